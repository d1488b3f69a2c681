#include "support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

namespace lpmtest {

namespace fs = std::filesystem;

std::map<std::string, TestFn>& registry() {
  static std::map<std::string, TestFn> tests;
  return tests;
}

int run_tests(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> names;
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) names.push_back(argv[i]);
  } else {
    for (const auto& entry : registry()) names.push_back(entry.first);
  }
  int failed = 0;
  for (const std::string& name : names) {
    auto it = registry().find(name);
    if (it == registry().end()) {
      std::cerr << "unknown test case " << name << "\n";
      return 2;
    }
    auto start = std::chrono::steady_clock::now();
    try {
      it->second();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::cout << "PASS " << name << " (" << s << " s)" << std::endl;
    } catch (const Failure& f) {
      std::cout << "FAIL " << name << ": " << f.message << std::endl;
      ++failed;
    } catch (const std::exception& e) {
      std::cout << "FAIL " << name << ": exception: " << e.what() << std::endl;
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}

std::string env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) throw Failure{"mkdtemp failed: " + std::string(std::strerror(errno))};
  return buffer.data();
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

Child::Child(const std::vector<std::string>& argv) {
  int in_pipe[2], out_pipe[2];
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) throw Failure{"pipe failed"};
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw Failure{"fork failed"};
  if (pid_ == 0) {
    // The child dies with the test, even when the test crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  in_fd_ = in_pipe[1];
  out_fd_ = out_pipe[0];
}

Child::~Child() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (in_fd_ >= 0) close(in_fd_);
  if (out_fd_ >= 0) close(out_fd_);
}

bool Child::read_line(std::string* line, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      *line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;
    char chunk[4096];
    ssize_t n = read(out_fd_, chunk, sizeof chunk);
    if (n <= 0) {
      close(out_fd_);
      out_fd_ = -1;
      return false;
    }
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

void Child::write_line(const std::string& line) {
  std::string text = line + "\n";
  if (in_fd_ < 0 || write(in_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw Failure{"cannot write to the child's stdin"};
}

void Child::close_stdin() {
  if (in_fd_ >= 0) close(in_fd_);
  in_fd_ = -1;
}

int Child::wait(std::chrono::milliseconds timeout) {
  if (exited_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return INT_MIN;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Child::terminate(std::chrono::milliseconds grace) {
  if (exited_) return status_;
  kill(pid_, SIGTERM);
  int status = wait(grace);
  if (status != INT_MIN) return status;
  kill(pid_, SIGKILL);
  return wait(std::chrono::milliseconds(10000));
}

std::vector<std::string> fixture_argv(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {env("LPM_PYTHON", "python3"), env("LPM_RING_FIXTURE")};
  if (argv[1].empty()) throw Failure{"LPM_RING_FIXTURE is not set (run the tests through ctest)"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string run_fixture(const std::vector<std::string>& args) {
  Child child(fixture_argv(args));
  child.close_stdin();
  std::string out, line;
  while (child.read_line(&line, std::chrono::milliseconds(60000))) out += line + "\n";
  int status = child.wait(std::chrono::milliseconds(60000));
  if (status != 0) throw Failure{"ring_fixture.py failed (exit " + std::to_string(status) + "): " + out};
  return out;
}

std::string unique_ring_name(const std::string& tag) {
  return "lpmnpc-test-" + std::to_string(getpid()) + "-" + tag;
}

std::string ring_file(const std::string& name) { return "/dev/shm/" + name; }

std::vector<int16_t> read_wav_pcm16(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure{"cannot open " + path};
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  auto u16 = [&](size_t at) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + at, 2);
    return v;
  };
  if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0)
    throw Failure{path + " is not a RIFF/WAVE file"};
  bool format_ok = false;
  for (size_t at = 12; at + 8 <= bytes.size();) {
    std::string id = bytes.substr(at, 4);
    uint32_t size = u32(at + 4);
    if (id == "fmt ") {
      format_ok = u16(at + 8) == 1 && u16(at + 10) == 1 && u32(at + 12) == 16000 && u16(at + 22) == 16;
      if (!format_ok) throw Failure{path + ": expected PCM16 mono 16 kHz"};
    } else if (id == "data") {
      if (!format_ok) throw Failure{path + ": data before fmt"};
      size_t n = std::min<size_t>(size, bytes.size() - at - 8) / 2;
      std::vector<int16_t> samples(n);
      std::memcpy(samples.data(), bytes.data() + at + 8, n * 2);
      return samples;
    }
    at += 8 + size + (size & 1u);
  }
  throw Failure{path + ": no data chunk"};
}

void make_pki(const std::string& dir) {
  std::string script = env("LPM_TLS_FIXTURE");
  if (script.empty()) throw Failure{"LPM_TLS_FIXTURE is not set (run the tests through ctest)"};
  Child child({env("LPM_PYTHON", "python3"), script, dir});
  child.close_stdin();
  std::string out, line;
  while (child.read_line(&line, std::chrono::milliseconds(60000))) out += line + "\n";
  int status = child.wait(std::chrono::milliseconds(60000));
  if (status != 0)
    throw Failure{"tls_fixture.py failed (exit " + std::to_string(status) +
                  "; it needs the `cryptography` package): " + out};
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure{"cannot open " + path};
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Daemon::Daemon(const DaemonOptions& options) {
  if (options.allow_external) {
    token_ = env("LPM_NPC_TOKEN");
    address_ = env("LPM_NPC_ADDRESS");
  }
  if (!address_.empty()) {
    std::cout << "using the daemon at LPM_NPC_ADDRESS=" << address_ << std::endl;
    return;
  }
  std::string exe = env("LPM_NPC_EXECUTABLE", "lpm-npc");
  store_ = make_temp_dir("lpm-bridge-store-");
  std::vector<std::string> argv = {exe, "serve", "--host", "127.0.0.1", "--port", "0", "--store", store_};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  child_ = new Child(argv);
  std::string line;
  // Loading the checkpoint takes a while on a busy machine.
  while (child_->read_line(&line, std::chrono::milliseconds(180000))) {
    std::cout << "[daemon] " << line << std::endl;
    const std::string prefix = "listening on ";
    if (line.rfind(prefix, 0) == 0) {
      address_ = line.substr(prefix.size());
      return;
    }
  }
  delete child_;
  child_ = nullptr;
  remove_tree(store_);
  throw Failure{"`" + exe + " serve` did not print 'listening on HOST:PORT'"};
}

Daemon::~Daemon() {
  if (child_ != nullptr) {
    int status = child_->terminate(std::chrono::milliseconds(20000));
    std::cout << "[daemon] exited with " << status << std::endl;
    delete child_;
  }
  if (!store_.empty()) remove_tree(store_);
}

}  // namespace lpmtest
