// Ring reader tests against rings written by the daemon's Python writer (tests/ring_fixture.py):
// valid frames, every slot, empty and closed rings, a writer that laps the reader (a
// deterministic hook and a real two-process race), a writer that died mid-write, and rings
// with a damaged header.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "errors.h"
#include "frame_ring.h"
#include "lpm_bridge.h"
#include "support.h"

using lpm::FrameRing;
using lpm::SlotMeta;
using lpm::SlotRead;
using lpmtest::Child;
using lpmtest::run_fixture;
using lpmtest::unique_ring_name;

namespace {

// Removes the ring file at the end of a test (the writer leaves it unless it unlinked).
struct RingFile {
  std::string name;
  explicit RingFile(const std::string& tag) : name(unique_ring_name(tag)) {}
  ~RingFile() { ::unlink(lpmtest::ring_file(name).c_str()); }
};

// The number of bytes that differ from ring_fixture.py's pattern for frame `seq`.
size_t pattern_errors(const uint8_t* rgba, uint32_t width, uint32_t height, uint64_t seq) {
  size_t errors = 0;
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* row = rgba + static_cast<size_t>(y) * width * 4;
    for (uint32_t x = 0; x < width; ++x) {
      const uint8_t* p = row + 4 * x;
      errors += p[0] != static_cast<uint8_t>((seq + y) & 255);
      errors += p[1] != static_cast<uint8_t>((3 * seq + x) & 255);
      errors += p[2] != static_cast<uint8_t>((7 * seq) & 255);
      errors += p[3] != 255;
    }
  }
  return errors;
}

std::string write_ring(const std::string& name, int w, int h, int slots, int frames, bool close = false) {
  std::vector<std::string> args = {"write", name, std::to_string(w), std::to_string(h),
                                   std::to_string(slots), std::to_string(frames)};
  if (close) args.push_back("--close");
  return run_fixture(args);
}

void check_slot(const FrameRing& ring, uint32_t slot, uint64_t expected_seq) {
  const lpm::RingGeometry& g = ring.geometry();
  std::vector<uint8_t> pixels(g.frame_bytes());
  SlotMeta meta;
  CHECK(ring.read_slot(slot, pixels.data(), &meta) == SlotRead::kOk);
  CHECK_MSG(meta.frame_seq == expected_seq, "slot " << slot << " holds " << meta.frame_seq);
  CHECK(meta.pts_samples == static_cast<int64_t>(expected_seq * 666));
  CHECK(meta.generated_unix_ns > 0);
  CHECK(pattern_errors(pixels.data(), g.width, g.height, expected_seq) == 0);
}

// Opens the ring file read-write to change a slot under the reader (as a writer would).
struct WritableMapping {
  uint8_t* base = nullptr;
  size_t size = 0;
  explicit WritableMapping(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(::fstat(fd, &st) == 0);
    size = static_cast<size_t>(st.st_size);
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    CHECK(m != MAP_FAILED);
    base = static_cast<uint8_t*>(m);
  }
  ~WritableMapping() { ::munmap(base, size); }
  uint64_t* sequence(const FrameRing& ring, uint32_t slot) {
    return reinterpret_cast<uint64_t*>(base + lpm::kRingHeaderSize + slot * ring.geometry().slot_stride);
  }
};

struct HookState {
  WritableMapping* mapping;
  const FrameRing* ring;
  int bump_attempts;  // attempts during which the "writer" rewrites the slot
  uint64_t add;       // 2: a whole rewrite happened during the copy; 1: a write is now in progress
  int calls = 0;
};

void bump_hook(void* user, uint32_t slot, int attempt) {
  HookState* s = static_cast<HookState*>(user);
  ++s->calls;
  if (attempt < s->bump_attempts) __atomic_fetch_add(s->mapping->sequence(*s->ring, slot), s->add, __ATOMIC_SEQ_CST);
}

void check_open_fails(const std::string& path, const char* needle) {
  lpm_ring* ring = reinterpret_cast<lpm_ring*>(0x1);
  CHECK_STATUS(LPM_ERR_RING, lpm_ring_open(path.c_str(), &ring));
  CHECK(ring == nullptr);
  std::string message = lpm_last_error();
  CHECK_MSG(message.find(needle) != std::string::npos, "'" << message << "' does not name " << needle);
  std::cout << "  refused as expected: " << message << std::endl;
}

}  // namespace

TEST_CASE(valid_frames) {
  RingFile f("valid");
  std::string path = write_ring(f.name, 64, 48, 4, 3);
  auto ring = FrameRing::open(f.name);  // by shared-memory name
  const lpm::RingGeometry& g = ring->geometry();
  CHECK(g.width == 64 && g.height == 48 && g.stride == 256 && g.slot_count == 4);
  CHECK(g.slot_stride == (64 + 48 * 256 + 63) / 64 * 64);
  CHECK(ring->frames_written() == 3);
  CHECK(!ring->closed());
  CHECK(ring->writer_pid() > 0);
  CHECK(ring->heartbeat_ns() > 0);
  for (uint32_t slot = 0; slot < 3; ++slot) check_slot(*ring, slot, slot);
  std::vector<uint8_t> pixels(g.frame_bytes());
  SlotMeta meta;
  CHECK(ring->read_slot(3, pixels.data(), &meta) == SlotRead::kEmpty);
  // The same ring by path, through the C ABI.
  lpm_ring* by_path = nullptr;
  CHECK_STATUS(LPM_OK, lpm_ring_open(lpmtest::ring_file(f.name).c_str(), &by_path));
  lpm_frame_info frame;
  CHECK_STATUS(LPM_OK, lpm_ring_read_latest(by_path, pixels.data(), pixels.size(), &frame));
  CHECK(frame.seq == 2 && frame.pts_samples == 2 * 666 && frame.width == 64 && frame.height == 48);
  CHECK(frame.stride == 256 && frame.format == LPM_FORMAT_RGBA8 && frame.pixels == pixels.data());
  CHECK(frame.pts_ms == 2 * 666 / 16.0);
  CHECK(pattern_errors(pixels.data(), 64, 48, 2) == 0);
  CHECK_STATUS(LPM_NO_DATA, lpm_ring_read_slot(by_path, 3, pixels.data(), pixels.size(), &frame));
  lpm_ring_close(by_path);
}

TEST_CASE(every_slot) {
  RingFile f("every");
  write_ring(f.name, 32, 32, 4, 10);
  auto ring = FrameRing::open(f.name);
  CHECK(ring->frames_written() == 10);
  // Frame n goes to slot n % 4: the ring holds 8, 9, 6, 7.
  const uint64_t expected[4] = {8, 9, 6, 7};
  for (uint32_t slot = 0; slot < 4; ++slot) check_slot(*ring, slot, expected[slot]);
}

TEST_CASE(empty_ring) {
  RingFile f("empty");
  write_ring(f.name, 32, 32, 2, 0);
  lpm_ring* ring = nullptr;
  CHECK_STATUS(LPM_OK, lpm_ring_open(f.name.c_str(), &ring));
  lpm_ring_info info;
  CHECK_STATUS(LPM_OK, lpm_ring_get_info(ring, &info));
  CHECK(info.frames_written == 0 && info.closed == 0 && info.slot_count == 2);
  std::vector<uint8_t> pixels(32 * 32 * 4);
  lpm_frame_info frame;
  CHECK_STATUS(LPM_NO_DATA, lpm_ring_read_latest(ring, pixels.data(), pixels.size(), &frame));
  CHECK_STATUS(LPM_NO_DATA, lpm_ring_read_slot(ring, 0, pixels.data(), pixels.size(), &frame));
  lpm_ring_close(ring);
}

TEST_CASE(closed_ring) {
  RingFile f("closed");
  write_ring(f.name, 32, 32, 4, 3, /*close=*/true);
  lpm_ring* ring = nullptr;
  CHECK_STATUS(LPM_OK, lpm_ring_open(f.name.c_str(), &ring));
  lpm_ring_info info;
  CHECK_STATUS(LPM_OK, lpm_ring_get_info(ring, &info));
  CHECK(info.closed == 1);
  CHECK(info.frames_written == 3);
  // A closed ring keeps its last frames readable.
  std::vector<uint8_t> pixels(32 * 32 * 4);
  lpm_frame_info frame;
  CHECK_STATUS(LPM_OK, lpm_ring_read_latest(ring, pixels.data(), pixels.size(), &frame));
  CHECK(frame.seq == 2);
  CHECK(pattern_errors(pixels.data(), 32, 32, 2) == 0);
  lpm_ring_close(ring);
}

TEST_CASE(closed_while_mapped) {
  RingFile f("hold");
  Child writer(lpmtest::fixture_argv({"hold", f.name, "48", "48", "3", "5"}));
  std::string line;
  CHECK(writer.read_line(&line, std::chrono::milliseconds(60000)) && line == "ready");
  auto ring = FrameRing::open(f.name);
  CHECK(!ring->closed());
  writer.write_line("close");
  CHECK(writer.read_line(&line, std::chrono::milliseconds(60000)) && line == "closed");
  // The writer closed and unlinked it: our mapping still works and says closed ...
  CHECK(ring->closed());
  CHECK(ring->frames_written() == 5);
  check_slot(*ring, 4 % 3, 4);
  check_slot(*ring, 3 % 3, 3);
  // ... and the name is gone.
  check_open_fails(f.name, "cannot open");
  writer.close_stdin();
  CHECK(writer.wait(std::chrono::milliseconds(30000)) == 0);
}

TEST_CASE(torn_write_hook) {
  RingFile f("hook");
  write_ring(f.name, 32, 16, 2, 2);
  auto ring = FrameRing::open(f.name);
  WritableMapping mapping(lpmtest::ring_file(f.name));
  std::vector<uint8_t> pixels(ring->geometry().frame_bytes());
  SlotMeta meta;
  int attempts = 0;
  // A complete rewrite (sequence + 2) during the first two copies: the reader retries.
  HookState twice{&mapping, ring.get(), 2, 2};
  CHECK(ring->read_slot(1, pixels.data(), &meta, 100, &attempts, bump_hook, &twice) == SlotRead::kOk);
  CHECK(attempts == 3 && twice.calls == 3);
  CHECK(meta.frame_seq == 1 && pattern_errors(pixels.data(), 32, 16, 1) == 0);
  // A writer that rewrites the slot during every copy: the reader gives up after its retries.
  HookState always{&mapping, ring.get(), 1000, 2};
  CHECK(ring->read_slot(1, pixels.data(), &meta, 100, &attempts, bump_hook, &always) == SlotRead::kBusy);
  CHECK(attempts == 100 && always.calls == 100);
  // A write that starts during the copy (sequence odd afterwards): rejected, then busy while odd.
  HookState starts{&mapping, ring.get(), 1, 1};
  CHECK(ring->read_slot(0, pixels.data(), &meta, 10, &attempts, bump_hook, &starts) == SlotRead::kBusy);
  CHECK(starts.calls == 1);  // every later attempt saw an odd sequence and copied nothing
  // The write finishes (sequence even again): readable.
  __atomic_fetch_add(mapping.sequence(*ring, 0), 1, __ATOMIC_SEQ_CST);
  CHECK(ring->read_slot(0, pixels.data(), &meta) == SlotRead::kOk && meta.frame_seq == 0);
}

TEST_CASE(stuck_writer) {
  RingFile f("stuck");
  run_fixture({"stuck", f.name, "32", "32", "3", "3", "1"});
  lpm_ring* ring = nullptr;
  CHECK_STATUS(LPM_OK, lpm_ring_open(f.name.c_str(), &ring));
  std::vector<uint8_t> pixels(32 * 32 * 4);
  lpm_frame_info frame;
  CHECK_STATUS(LPM_ERR_RING_BUSY, lpm_ring_read_slot(ring, 1, pixels.data(), pixels.size(), &frame));
  CHECK(std::string(lpm_last_error()).find("slot 1") != std::string::npos);
  CHECK_STATUS(LPM_OK, lpm_ring_read_slot(ring, 2, pixels.data(), pixels.size(), &frame));
  CHECK(frame.seq == 2 && pattern_errors(pixels.data(), 32, 32, 2) == 0);
  lpm_ring_close(ring);
}

TEST_CASE(torn_write_race) {
  // The Python writer rewrites 3 slots of 256x256 as fast as it can while this process reads
  // them round-robin: every accepted copy must be exactly one frame.
  RingFile f("race");
  Child writer(lpmtest::fixture_argv({"race", f.name, "256", "256", "3", "3"}));
  std::string line;
  CHECK(writer.read_line(&line, std::chrono::milliseconds(60000)) && line == "ready");
  auto ring = FrameRing::open(f.name);
  const lpm::RingGeometry& g = ring->geometry();
  std::vector<uint8_t> pixels(g.frame_bytes());
  uint64_t accepted = 0, busy = 0, retried = 0, torn = 0, latest_reads = 0, empty = 0;
  uint64_t first_written = ring->frames_written();
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (uint64_t i = 0; !ring->closed(); ++i) {
    CHECK_MSG(std::chrono::steady_clock::now() < give_up, "the writer never closed the ring");
    uint32_t slot = static_cast<uint32_t>(i % g.slot_count);
    if (i % 4 == 3) {  // as a polling reader does: the newest frame
      uint64_t written = ring->frames_written();
      slot = static_cast<uint32_t>((written - 1) % g.slot_count);
      ++latest_reads;
    }
    SlotMeta meta;
    int attempts = 0;
    SlotRead r = ring->read_slot(slot, pixels.data(), &meta, lpm::kDefaultReadRetries, &attempts);
    if (attempts > 1) ++retried;
    if (r == SlotRead::kBusy) {
      ++busy;
      continue;
    }
    if (r == SlotRead::kEmpty) {
      // Not reached yet, or the Python writer's struct.pack_into zero-filling the slot header
      // mid-write (sequence reads 0 for a moment): never a frame, whatever the pixels hold.
      ++empty;
      continue;
    }
    CHECK(r == SlotRead::kOk);
    ++accepted;
    bool consistent = meta.pts_samples == static_cast<int64_t>(meta.frame_seq * 666) &&
                      pattern_errors(pixels.data(), g.width, g.height, meta.frame_seq) == 0;
    torn += !consistent;
  }
  uint64_t written = ring->frames_written() - first_written;
  CHECK(writer.read_line(&line, std::chrono::milliseconds(30000)) && line.rfind("done", 0) == 0);
  CHECK(writer.wait(std::chrono::milliseconds(30000)) == 0);
  std::cout << "  writer wrote " << written << " frames; reader accepted " << accepted
            << " copies (" << latest_reads << " newest-frame reads), " << retried
            << " needed retries, " << busy << " gave up, " << empty << " saw sequence 0, " << torn
            << " torn" << std::endl;
  CHECK(torn == 0);
  CHECK(written > 20);
  CHECK(accepted > 20);
  CHECK_MSG(retried + busy > 0, "the writer never overlapped a read: the race was not exercised");
}

TEST_CASE(bad_magic) {
  RingFile f("magic");
  run_fixture({"corrupt", f.name, "32", "32", "2", "1", "magic"});
  check_open_fails(f.name, "magic");
}

TEST_CASE(bad_version) {
  RingFile f("version");
  run_fixture({"corrupt", f.name, "32", "32", "2", "1", "version"});
  check_open_fails(f.name, "version 2");
}

TEST_CASE(bad_format) {
  RingFile f("format");
  run_fixture({"corrupt", f.name, "32", "32", "2", "1", "format"});
  check_open_fails(f.name, "pixel format 7");
}

TEST_CASE(bad_stride) {
  RingFile f("stride");
  run_fixture({"corrupt", f.name, "32", "32", "2", "1", "stride"});
  check_open_fails(f.name, "stride 132");
}

TEST_CASE(truncated) {
  RingFile f("trunc");
  run_fixture({"corrupt", f.name, "32", "32", "2", "1", "truncate"});
  check_open_fails(f.name, "the header implies");
}

TEST_CASE(missing) { check_open_fails(unique_ring_name("never-created"), "cannot open"); }

TEST_CASE(c_abi_errors) {
  RingFile f("abi");
  write_ring(f.name, 32, 32, 2, 1);
  lpm_ring* ring = nullptr;
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_open(nullptr, &ring));
  CHECK(std::string(lpm_last_error()) == "name_or_path is NULL");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_open(f.name.c_str(), nullptr));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_open("", &ring));
  CHECK_STATUS(LPM_OK, lpm_ring_open(f.name.c_str(), &ring));
  std::vector<uint8_t> pixels(32 * 32 * 4);
  lpm_frame_info frame;
  CHECK_STATUS(LPM_ERR_BUFFER_TOO_SMALL, lpm_ring_read_slot(ring, 0, pixels.data(), pixels.size() - 1, &frame));
  CHECK(std::string(lpm_last_error()).find("4096") != std::string::npos);
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_read_slot(ring, 2, pixels.data(), pixels.size(), &frame));
  CHECK(std::string(lpm_last_error()) == "slot must be in [0, 2), got 2");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_read_slot(ring, 0, nullptr, 0, &frame));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_get_info(ring, nullptr));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_ring_get_info(nullptr, nullptr));
  lpm_ring_info info;
  CHECK_STATUS(LPM_OK, lpm_ring_get_info(ring, &info));
  CHECK(info.width == 32 && info.height == 32 && info.stride == 128 && info.format == 1);
  CHECK(info.writer_pid > 0 && info.heartbeat_ns > 0 && info.frames_written == 1);
  lpm_ring_close(ring);
  lpm_ring_close(nullptr);  // allowed, like free(NULL)
}

int main(int argc, char** argv) { return lpmtest::run_tests(argc, argv); }
