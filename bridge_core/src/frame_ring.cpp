#include "frame_ring.h"

#include <atomic>
#include <cstring>
#include <thread>

#include "errors.h"

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the frame ring is little-endian; this reader assumes a little-endian host"
#endif

namespace lpm {

namespace {

// Header field offsets (docs/shm-ring.md, "Header").
constexpr size_t kOffVersion = 8, kOffHeaderSize = 12, kOffWidth = 16, kOffHeight = 20,
                 kOffStride = 24, kOffFormat = 28, kOffSlotCount = 32, kOffSlotHeaderSize = 36,
                 kOffSlotStride = 40, kOffHeartbeat = 48, kOffWriterPid = 56, kOffFlags = 60,
                 kOffFramesWritten = 64;
// Slot field offsets ("Slot i").
constexpr size_t kSlotSequence = 0, kSlotFrameSeq = 8, kSlotPts = 16, kSlotGenerated = 24,
                 kSlotWidth = 32, kSlotHeight = 36;
constexpr char kMagic[8] = {'L', 'P', 'M', 'R', 'I', 'N', 'G', '\0'};
constexpr uint32_t kMaxSide = 8192, kMaxSlots = 1024;

// The writer stores these fields while we read; read them as single atomic loads.
// (std::atomic_ref is C++20; on GCC/Clang the builtins apply to plain memory.)
inline uint64_t load_u64_acquire(const uint8_t* p) {
#if defined(_MSC_VER)
  uint64_t v = *reinterpret_cast<const volatile uint64_t*>(p);
  std::atomic_thread_fence(std::memory_order_acquire);
  return v;
#else
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
#endif
}

inline uint64_t load_u64_relaxed(const uint8_t* p) {
#if defined(_MSC_VER)
  return *reinterpret_cast<const volatile uint64_t*>(p);
#else
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_RELAXED);
#endif
}

inline uint32_t load_u32_relaxed(const uint8_t* p) {
#if defined(_MSC_VER)
  return *reinterpret_cast<const volatile uint32_t*>(p);
#else
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED);
#endif
}

template <typename T>
T read_field(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool is_path(const std::string& s) { return s.find('/') != std::string::npos || s.find('\\') != std::string::npos; }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw BridgeError(LPM_ERR_RING, "shm ring " + path + ": " + what);
}

}  // namespace

std::unique_ptr<FrameRing> FrameRing::open(const std::string& name_or_path) {
  if (name_or_path.empty()) throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "ring name is empty");
  std::unique_ptr<FrameRing> ring(new FrameRing());
#if defined(_WIN32)
  // The Python writer keeps the ring as a file (in %TEMP% when there is no /dev/shm).
  std::string path = name_or_path;
  if (!is_path(path)) {
    char temp[MAX_PATH + 1];
    DWORD n = GetTempPathA(MAX_PATH + 1, temp);
    path = std::string(temp, n) + name_or_path;
  }
  ring->path_ = path;
  int wide_len = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
  std::wstring wide(static_cast<size_t>(wide_len > 0 ? wide_len : 1), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, &wide[0], wide_len);
  HANDLE file = CreateFileW(wide.c_str(), GENERIC_READ,
                            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                            OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (file == INVALID_HANDLE_VALUE) fail(path, "cannot open (error " + std::to_string(GetLastError()) + ")");
  LARGE_INTEGER size;
  if (!GetFileSizeEx(file, &size)) {
    CloseHandle(file);
    fail(path, "cannot read its size");
  }
  ring->size_ = static_cast<size_t>(size.QuadPart);
  if (ring->size_ < kRingHeaderSize) {
    CloseHandle(file);
    fail(path, std::to_string(ring->size_) + " bytes is smaller than the 128-byte header");
  }
  HANDLE mapping = CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
  CloseHandle(file);
  if (mapping == nullptr) fail(path, "cannot map (error " + std::to_string(GetLastError()) + ")");
  void* view = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
  if (view == nullptr) {
    CloseHandle(mapping);
    fail(path, "cannot map a view (error " + std::to_string(GetLastError()) + ")");
  }
  ring->mapping_handle_ = mapping;
  ring->base_ = static_cast<const uint8_t*>(view);
#else
  int fd;
  if (is_path(name_or_path)) {
    ring->path_ = name_or_path;
    fd = ::open(name_or_path.c_str(), O_RDONLY | O_CLOEXEC);
  } else {
    ring->path_ = "/" + name_or_path;  // shm_open's name; /dev/shm/<name> on Linux
    fd = ::shm_open(ring->path_.c_str(), O_RDONLY, 0);
  }
  if (fd < 0) fail(ring->path_, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(ring->path_, std::string("fstat failed: ") + std::strerror(e));
  }
  ring->size_ = static_cast<size_t>(st.st_size);
  if (ring->size_ < kRingHeaderSize) {
    ::close(fd);
    fail(ring->path_, std::to_string(ring->size_) + " bytes is smaller than the 128-byte header");
  }
  void* map = ::mmap(nullptr, ring->size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the memory
  if (map == MAP_FAILED) fail(ring->path_, std::string("mmap failed: ") + std::strerror(errno));
  ring->base_ = static_cast<const uint8_t*>(map);
#endif
  const uint8_t* h = ring->base_;
  const std::string& p = ring->path_;
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) fail(p, "bad magic, expected \"LPMRING\\0\"");
  uint32_t version = read_field<uint32_t>(h + kOffVersion);
  if (version != kRingVersion)
    fail(p, "ring version " + std::to_string(version) + ", this reader supports 1");
  uint32_t header_size = read_field<uint32_t>(h + kOffHeaderSize);
  uint32_t slot_header_size = read_field<uint32_t>(h + kOffSlotHeaderSize);
  if (header_size != kRingHeaderSize || slot_header_size != kSlotHeaderSize)
    fail(p, "header_size " + std::to_string(header_size) + " / slot_header_size " +
                std::to_string(slot_header_size) + ", version 1 has 128 / 64");
  RingGeometry& g = ring->geometry_;
  g.width = read_field<uint32_t>(h + kOffWidth);
  g.height = read_field<uint32_t>(h + kOffHeight);
  g.stride = read_field<uint32_t>(h + kOffStride);
  g.format = read_field<uint32_t>(h + kOffFormat);
  g.slot_count = read_field<uint32_t>(h + kOffSlotCount);
  g.slot_stride = read_field<uint64_t>(h + kOffSlotStride);
  ring->writer_pid_ = read_field<uint32_t>(h + kOffWriterPid);
  if (g.format != kFormatRgba8)
    fail(p, "pixel format " + std::to_string(g.format) + ", expected 1 (RGBA8)");
  if (g.width < 1 || g.width > kMaxSide || g.height < 1 || g.height > kMaxSide)
    fail(p, "frame size " + std::to_string(g.width) + "x" + std::to_string(g.height) +
                " outside 1..8192");
  if (g.slot_count < 2 || g.slot_count > kMaxSlots)
    fail(p, "slot_count " + std::to_string(g.slot_count) + " outside 2..1024");
  uint64_t raw = kSlotHeaderSize + static_cast<uint64_t>(g.height) * g.width * 4;
  uint64_t expected_slot_stride = (raw + 63) / 64 * 64;
  if (g.stride != g.width * 4 || g.slot_stride != expected_slot_stride)
    fail(p, "stride " + std::to_string(g.stride) + " / slot_stride " +
                std::to_string(g.slot_stride) + ", expected " + std::to_string(g.width * 4) +
                " / " + std::to_string(expected_slot_stride));
  uint64_t total = kRingHeaderSize + g.slot_count * g.slot_stride;
  if (ring->size_ < total)
    fail(p, std::to_string(ring->size_) + " bytes, the header implies " + std::to_string(total));
  return ring;
}

FrameRing::~FrameRing() {
  if (base_ == nullptr) return;
#if defined(_WIN32)
  UnmapViewOfFile(base_);
  CloseHandle(static_cast<HANDLE>(mapping_handle_));
#else
  ::munmap(const_cast<uint8_t*>(base_), size_);
#endif
}

uint64_t FrameRing::frames_written() const { return load_u64_acquire(base_ + kOffFramesWritten); }

uint64_t FrameRing::heartbeat_ns() const { return load_u64_relaxed(base_ + kOffHeartbeat); }

bool FrameRing::closed() const { return (load_u32_relaxed(base_ + kOffFlags) & kFlagClosed) != 0; }

SlotRead FrameRing::read_slot(uint32_t slot, uint8_t* dst, SlotMeta* meta, int retries, int* attempts,
                          AfterCopyHook hook, void* hook_user) const {
  const RingGeometry& g = geometry_;
  if (slot >= g.slot_count)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "slot must be in [0, " +
                                                    std::to_string(g.slot_count) + "), got " +
                                                    std::to_string(slot));
  const uint8_t* base = base_ + kRingHeaderSize + slot * g.slot_stride;
  const uint8_t* pixels = base + kSlotHeaderSize;
  int attempt = 0;
  bool ok = false;
  uint64_t sequence = 0;
  uint32_t width = 0, height = 0;
  for (; attempt < retries && !ok; ++attempt) {
    if (attempt >= 4) std::this_thread::yield();  // the writer is mid-frame: let it finish
    uint64_t before = load_u64_acquire(base + kSlotSequence);
    if (before & 1u) continue;  // a write is in progress
    meta->frame_seq = load_u64_relaxed(base + kSlotFrameSeq);
    meta->pts_samples = static_cast<int64_t>(load_u64_relaxed(base + kSlotPts));
    meta->generated_unix_ns = load_u64_relaxed(base + kSlotGenerated);
    width = load_u32_relaxed(base + kSlotWidth);
    height = load_u32_relaxed(base + kSlotHeight);
    std::memcpy(dst, pixels, g.frame_bytes());
    if (hook != nullptr) hook(hook_user, slot, attempt);
    // Orders the copy's loads before the re-check (the seqlock reader's fence).
    std::atomic_thread_fence(std::memory_order_acquire);
    ok = load_u64_relaxed(base + kSlotSequence) == before;
    sequence = before;
  }
  if (attempts != nullptr) *attempts = attempt;
  if (!ok) return SlotRead::kBusy;
  // Sequence 0 is never a frame: a slot not written yet, or (with the Python writer, whose
  // struct.pack_into zero-fills the slot header before packing the odd sequence) a write that
  // has just begun.
  if (sequence == 0) return SlotRead::kEmpty;
  if ((width != g.width || height != g.height))
    throw BridgeError(LPM_ERR_RING, "shm ring " + path_ + ": slot " + std::to_string(slot) +
                                        " holds " + std::to_string(width) + "x" +
                                        std::to_string(height) + ", the header says " +
                                        std::to_string(g.width) + "x" + std::to_string(g.height));
  return SlotRead::kOk;
}

}  // namespace lpm
