// Test support for bridge_core: a minimal test runner (one case per CTest entry), a child
// process with pipes (the Python ring writer, the daemon), WAV reading, and the daemon fixture.
// POSIX only: the tests run on the CI's Debian machine.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace lpmtest {

struct Failure {
  std::string message;
};

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::ostringstream check_os_;                                                    \
      check_os_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed";         \
      throw ::lpmtest::Failure{check_os_.str()};                                       \
    }                                                                                  \
  } while (0)

#define CHECK_MSG(cond, msg)                                                           \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::ostringstream check_os_;                                                    \
      check_os_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed: " << msg; \
      throw ::lpmtest::Failure{check_os_.str()};                                       \
    }                                                                                  \
  } while (0)

// Checks an lpm_status call and shows lpm_last_error() when it is not the expected one.
#define CHECK_STATUS(expected, call)                                                   \
  do {                                                                                 \
    int check_got_ = (call);                                                           \
    CHECK_MSG(check_got_ == (expected), #call " returned " << lpm_status_name(check_got_) \
                                                  << " (expected " << lpm_status_name(expected) \
                                                  << "): " << lpm_last_error());       \
  } while (0)

using TestFn = std::function<void()>;
std::map<std::string, TestFn>& registry();
struct Registrar {
  Registrar(const char* name, TestFn fn) { registry()[name] = std::move(fn); }
};
#define TEST_CASE(name)                                               \
  static void test_##name();                                          \
  static ::lpmtest::Registrar registrar_##name(#name, test_##name);   \
  static void test_##name()

// Runs the case named by argv[1] (or every case); returns the process exit code.
int run_tests(int argc, char** argv);

std::string env(const char* name, const std::string& fallback = "");
std::string make_temp_dir(const std::string& prefix);
void remove_tree(const std::string& path);

// A child process with its stdin and stdout as pipes (stderr is inherited).
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();  // SIGKILLs the child if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // One line of stdout (without the newline); false at EOF or after `timeout`.
  bool read_line(std::string* line, std::chrono::milliseconds timeout);
  void write_line(const std::string& line);
  void close_stdin();
  // SIGTERM, then SIGKILL after `grace`; returns the exit status (or -signal).
  int terminate(std::chrono::milliseconds grace);
  // Waits for exit; returns the exit status (or -signal), or INT32_MIN on timeout.
  int wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  std::string buffered_;
  bool exited_ = false;
  int status_ = 0;
};

// Runs the ring fixture (tests/ring_fixture.py) to completion; returns its stdout.
std::string run_fixture(const std::vector<std::string>& args);
std::vector<std::string> fixture_argv(const std::vector<std::string>& args);
// A ring name unique to this process and `tag` (the Python writer creates it in /dev/shm).
std::string unique_ring_name(const std::string& tag);
std::string ring_file(const std::string& name);

// 16-bit mono WAV samples (checks the format: PCM16, mono, 16 kHz).
std::vector<int16_t> read_wav_pcm16(const std::string& path);

// Writes the TLS tests' certificates into `dir` (tests/tls_fixture.py: ca, server, client,
// other-ca, other-client; .pem certificates and .key keys).
void make_pki(const std::string& dir);
// The whole file (a test reads PEM files to pass them as text).
std::string read_text_file(const std::string& path);

struct DaemonOptions {
  // Arguments after `serve --host 127.0.0.1 --port 0 --store DIR` (e.g. --tls-cert F --tls-key F).
  std::vector<std::string> extra_args;
  // Use LPM_NPC_ADDRESS (and LPM_NPC_TOKEN) when set instead of starting a daemon; tests that
  // need a daemon started in a particular way (TLS) say false.
  bool allow_external = true;
};

// The daemon for integration tests: LPM_NPC_ADDRESS when set (and allowed), else
// `lpm-npc serve --port 0` with a fresh store, stopped (SIGTERM) on destruction.
class Daemon {
 public:
  explicit Daemon(const DaemonOptions& options = DaemonOptions());
  ~Daemon();
  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

 private:
  std::string address_;
  std::string token_;
  std::string store_;
  Child* child_ = nullptr;
};

}  // namespace lpmtest
