// Internal error handling: bridge code throws BridgeError; the C ABI (c_api.cpp) catches it,
// stores its message as this thread's last error and returns its status.
#pragma once

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "lpm_bridge.h"

namespace lpm {

class BridgeError : public std::runtime_error {
 public:
  BridgeError(lpm_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  lpm_status status() const { return status_; }

 private:
  lpm_status status_;
};

// The calling thread's last error (set by the C ABI on failure).
void set_last_error(const std::string& message);
const char* last_error();

const char* status_name(int status);

// Copies `src` into a fixed char array of the C ABI, truncating, always NUL-terminated.
inline void copy_to(char* dst, size_t capacity, const std::string& src) {
  size_t n = std::min(capacity - 1, src.size());
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace lpm
