// Per-frame read time from the shared-memory ring: rings written by the daemon's Python writer
// (tests/ring_fixture.py) at 128 (the tiny preset's native size), 256 and 512 px, read through
// the C ABI (lpm_ring_read_slot: seqlock + copy into a caller buffer) slot after slot.
//   ring_bench [reads per size]      (run from ctest's environment, or set LPM_RING_FIXTURE)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "lpm_bridge.h"
#include "support.h"

int main(int argc, char** argv) {
  int reads = argc > 1 ? std::atoi(argv[1]) : 20000;
  try {
    std::printf("ring read (seqlock copy into a caller buffer), %d reads per size\n", reads);
    for (int side : {128, 256, 512}) {
      std::string name = lpmtest::unique_ring_name("bench-" + std::to_string(side));
      lpmtest::run_fixture({"write", name, std::to_string(side), std::to_string(side), "8", "8"});
      lpm_ring* ring = nullptr;
      if (lpm_ring_open(name.c_str(), &ring) != LPM_OK) {
        std::fprintf(stderr, "lpm_ring_open: %s\n", lpm_last_error());
        return 1;
      }
      std::vector<uint8_t> dst(static_cast<size_t>(side) * side * 4);
      lpm_frame_info frame;
      std::vector<double> ns;
      ns.reserve(reads);
      for (int i = 0; i < reads; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        int status = lpm_ring_read_slot(ring, static_cast<uint32_t>(i % 8), dst.data(), dst.size(), &frame);
        auto t1 = std::chrono::steady_clock::now();
        if (status != LPM_OK) {
          std::fprintf(stderr, "lpm_ring_read_slot: %s\n", lpm_last_error());
          return 1;
        }
        ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
      }
      lpm_ring_close(ring);
      ::unlink(lpmtest::ring_file(name).c_str());
      std::sort(ns.begin(), ns.end());
      double mean = 0;
      for (double v : ns) mean += v / ns.size();
      double bytes = static_cast<double>(dst.size());
      std::printf("RESULT ring_read %dx%d (%.0f KiB): mean %.2f us, p50 %.2f us, p99 %.2f us, %.1f GB/s\n",
                  side, side, bytes / 1024, mean / 1000, ns[ns.size() / 2] / 1000,
                  ns[ns.size() * 99 / 100] / 1000, bytes / mean);
    }
  } catch (const lpmtest::Failure& f) {
    std::fprintf(stderr, "%s\n", f.message.c_str());
    return 1;
  }
  return 0;
}
