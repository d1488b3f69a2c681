// FrameRing: a read-only mapping of the daemon's shared-memory frame ring (docs/shm-ring.md,
// version 1) and the seqlock copy of one slot. The daemon is the only writer; this class never
// writes to the mapping. It knows nothing about gRPC or sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lpm {

// The layout constants of docs/shm-ring.md.
constexpr uint32_t kRingVersion = 1;
constexpr uint32_t kRingHeaderSize = 128;
constexpr uint32_t kSlotHeaderSize = 64;
constexpr uint32_t kFormatRgba8 = 1;
constexpr uint32_t kFlagClosed = 1;
constexpr int kDefaultReadRetries = 100;

struct RingGeometry {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t stride = 0;  // bytes per row = width * 4
  uint32_t format = 0;
  uint32_t slot_count = 0;
  uint64_t slot_stride = 0;
  size_t frame_bytes() const { return static_cast<size_t>(height) * stride; }
};

enum class SlotRead {
  kOk,     // a consistent copy
  kBusy,   // the slot was being written or changed during every attempt
  kEmpty,  // the slot has never been written (sequence 0)
};

// The metadata of a consistent slot copy.
struct SlotMeta {
  uint64_t frame_seq = 0;
  int64_t pts_samples = 0;
  uint64_t generated_unix_ns = 0;
};

class FrameRing {
 public:
  // Called by read_slot after the copy and before the sequence re-check (tests use it to
  // change the slot under the reader deterministically).
  using AfterCopyHook = void (*)(void* user, uint32_t slot, int attempt);

  // Maps `name_or_path` read-only (a shared-memory name, or a path when it holds '/' or '\\')
  // and checks the header. Throws BridgeError(LPM_ERR_RING) naming the field that is wrong.
  static std::unique_ptr<FrameRing> open(const std::string& name_or_path);
  ~FrameRing();
  FrameRing(const FrameRing&) = delete;
  FrameRing& operator=(const FrameRing&) = delete;

  const RingGeometry& geometry() const { return geometry_; }
  const std::string& path() const { return path_; }
  uint32_t writer_pid() const { return writer_pid_; }
  uint64_t frames_written() const;
  uint64_t heartbeat_ns() const;
  bool closed() const;

  // Copies slot `slot` into `dst` (geometry().frame_bytes() bytes) with the seqlock of
  // docs/shm-ring.md. kBusy when the slot was being written or changed during each of
  // `retries` attempts (the writer keeps lapping the reader); kEmpty when it was never written.
  // `attempts` (optional) receives the attempts made. Throws BridgeError(LPM_ERR_RING) if a
  // consistent slot contradicts the header (a corrupt writer). Thread-safe.
  SlotRead read_slot(uint32_t slot, uint8_t* dst, SlotMeta* meta, int retries = kDefaultReadRetries,
                 int* attempts = nullptr, AfterCopyHook hook = nullptr,
                 void* hook_user = nullptr) const;

 private:
  FrameRing() = default;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  RingGeometry geometry_;
  uint32_t writer_pid_ = 0;
  std::string path_;
#if defined(_WIN32)
  void* mapping_handle_ = nullptr;
#endif
};

}  // namespace lpm
