// The C ABI without a daemon: struct sizes (what bindings check their twins against), status
// names, argument checks with their messages, the per-thread last error, connecting to a port
// where nothing listens, and the TLS options' checks of their files (missing, not PEM, wrong
// kind, cert without key), which all fail before any network traffic.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <initializer_list>
#include <iostream>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "lpm_bridge.h"
#include "support.h"

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A localhost port nothing listens on (bound, then released).
int unused_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  CHECK(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  CHECK_MSG(out.good(), "cannot write " << path);
}

// Structurally valid PEM blocks (base64 of a DER SEQUENCE): enough for the bridge's own checks,
// which run before gRPC sees the material.
const char kCertificatePem[] = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
const char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";

// lpm_connect_with_options must fail with `expected` and a message holding every `needle`;
// nothing is created.
void check_refused(const lpm_connect_options& options, int expected,
                   std::initializer_list<std::string> needles) {
  lpm_client* client = reinterpret_cast<lpm_client*>(0x1);
  CHECK_STATUS(expected, lpm_connect_with_options("127.0.0.1:1", &options, &client));
  CHECK(client == nullptr);
  std::string message = lpm_last_error();
  for (const std::string& needle : needles) CHECK_MSG(contains(message, needle), message);
  std::cout << "  " << lpm_status_name(expected) << ": " << message << std::endl;
}

}  // namespace

TEST_CASE(struct_sizes) {
  CHECK(lpm_bridge_abi_version() == LPM_BRIDGE_ABI_VERSION);
  CHECK(lpm_struct_size("lpm_character_info") == sizeof(lpm_character_info));
  CHECK(lpm_struct_size("lpm_connect_options") == sizeof(lpm_connect_options));
  CHECK(lpm_struct_size("lpm_session_options") == sizeof(lpm_session_options));
  CHECK(lpm_struct_size("lpm_session_info") == sizeof(lpm_session_info));
  CHECK(lpm_struct_size("lpm_frame_info") == sizeof(lpm_frame_info));
  CHECK(lpm_struct_size("lpm_event") == sizeof(lpm_event));
  CHECK(lpm_struct_size("lpm_close_info") == sizeof(lpm_close_info));
  CHECK(lpm_struct_size("lpm_ring_info") == sizeof(lpm_ring_info));
  CHECK(lpm_struct_size("lpm_nothing") == 0);
  CHECK(lpm_struct_size(nullptr) == 0);
  // The layouts are explicit (no hidden padding) on 64-bit targets; the C# twins rely on it.
  static_assert(sizeof(void*) != 8 || sizeof(lpm_session_options) == 48, "lpm_session_options");
  static_assert(sizeof(lpm_session_info) == 288, "lpm_session_info");
  static_assert(sizeof(void*) != 8 || sizeof(lpm_frame_info) == 72, "lpm_frame_info");
  static_assert(sizeof(lpm_event) == 376, "lpm_event");
  static_assert(sizeof(lpm_close_info) == 24, "lpm_close_info");
  static_assert(sizeof(lpm_ring_info) == 48, "lpm_ring_info");
  static_assert(sizeof(lpm_character_info) == 152, "lpm_character_info");
  static_assert(sizeof(void*) != 8 || sizeof(lpm_connect_options) == 72, "lpm_connect_options");
}

TEST_CASE(status_names) {
  CHECK(std::string(lpm_status_name(LPM_OK)) == "LPM_OK");
  CHECK(std::string(lpm_status_name(LPM_NO_DATA)) == "LPM_NO_DATA");
  CHECK(std::string(lpm_status_name(LPM_ERR_NOT_FOUND)) == "LPM_ERR_NOT_FOUND");
  CHECK(std::string(lpm_status_name(LPM_ERR_RING_BUSY)) == "LPM_ERR_RING_BUSY");
  CHECK(std::string(lpm_status_name(LPM_ERR_INTERNAL)) == "LPM_ERR_INTERNAL");
  CHECK(std::string(lpm_status_name(-99)) == "LPM_UNKNOWN_STATUS");
  // Every code from INTERNAL up to NO_DATA has its own name.
  for (int s = LPM_ERR_INTERNAL; s <= LPM_NO_DATA; ++s)
    CHECK_MSG(std::string(lpm_status_name(s)) != "LPM_UNKNOWN_STATUS", s);
}

TEST_CASE(null_arguments) {
  lpm_client* client = reinterpret_cast<lpm_client*>(0x1);
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_connect(nullptr, nullptr, 100, &client));
  CHECK(client == nullptr);
  CHECK(std::string(lpm_last_error()) == "address is NULL");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_connect("127.0.0.1:1", nullptr, 100, nullptr));
  CHECK(std::string(lpm_last_error()) == "out_client is NULL");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_connect("", nullptr, 100, &client));
  CHECK(contains(lpm_last_error(), "address is empty"));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_client_ping(nullptr, nullptr));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_register_character_dir(nullptr, "x", nullptr, nullptr));
  lpm_session_options options;
  lpm_session_options_init(&options);
  lpm_session* session = reinterpret_cast<lpm_session*>(0x1);
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_open(nullptr, &options, &session));
  CHECK(session == nullptr);
  CHECK(std::string(lpm_last_error()) == "client is NULL");
  int16_t pcm[4] = {0, 0, 0, 0};
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_push_audio(nullptr, LPM_TRACK_SPEAK, pcm, 4, -1));
  CHECK(std::string(lpm_last_error()) == "session is NULL");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_segment_end(nullptr, LPM_TRACK_SPEAK));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_interrupt(nullptr));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_set_prompt(nullptr, "x"));
  lpm_frame_info frame;
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_next_frame(nullptr, 0, nullptr, 0, &frame));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_poll_frame(nullptr, nullptr, 0, &frame));
  lpm_event event;
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_poll_event(nullptr, &event));
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_close(nullptr, nullptr));
  lpm_client_destroy(nullptr);  // allowed, like free(NULL)

  // The last error belongs to the thread that made the failing call.
  std::string other;
  std::thread t([&] { other = lpm_last_error(); });
  t.join();
  CHECK(other.empty());
  CHECK(std::string(lpm_last_error()) == "session is NULL");
}

TEST_CASE(connect_unreachable) {
  std::string address = "127.0.0.1:" + std::to_string(unused_port());
  lpm_client* client = nullptr;
  auto start = std::chrono::steady_clock::now();
  CHECK_STATUS(LPM_ERR_UNAVAILABLE, lpm_connect(address.c_str(), "secret", 700, &client));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(client == nullptr);
  std::string message = lpm_last_error();
  CHECK_MSG(contains(message, address) && contains(message, "700 ms"), message);
  CHECK_MSG(seconds < 30, "connect took " << seconds << " s");  // bounded, not a timing check
}

TEST_CASE(options_defaults) {
  lpm_session_options options;
  std::memset(&options, 0xAB, sizeof options);
  lpm_session_options_init(&options);
  CHECK(options.character == nullptr && options.prompt == nullptr);
  CHECK(options.seed == 0 && options.width == 0 && options.height == 0 && options.fps == 0);
  CHECK(options.delivery == LPM_DELIVERY_AUTO && options.idle_policy == LPM_IDLE_DEFAULT);
  CHECK(options.shm_slots == 0);
  lpm_session_options_init(nullptr);  // no-op
}

TEST_CASE(connect_options) {
  lpm_connect_options options;
  std::memset(&options, 0xAB, sizeof options);
  lpm_connect_options_init(&options);
  CHECK(options.token == nullptr && options.timeout_ms == 0 && options.tls == 0);
  CHECK(options.tls_ca_file == nullptr && options.tls_ca_pem == nullptr);
  CHECK(options.tls_cert_file == nullptr && options.tls_cert_pem == nullptr);
  CHECK(options.tls_key_file == nullptr && options.tls_key_pem == nullptr);
  CHECK(options.tls_server_name == nullptr);
  lpm_connect_options_init(nullptr);  // no-op

  lpm_client* client = reinterpret_cast<lpm_client*>(0x1);
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_connect_with_options(nullptr, &options, &client));
  CHECK(client == nullptr && std::string(lpm_last_error()) == "address is NULL");
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_connect_with_options("127.0.0.1:1", &options, nullptr));
  CHECK(std::string(lpm_last_error()) == "out_client is NULL");

  // The message says whether TLS was used, and with what.
  std::string address = "127.0.0.1:" + std::to_string(unused_port());
  options.timeout_ms = 700;
  CHECK_STATUS(LPM_ERR_UNAVAILABLE, lpm_connect_with_options(address.c_str(), &options, &client));
  CHECK(client == nullptr);
  CHECK_MSG(contains(lpm_last_error(), address + " within 700 ms in plaintext"), lpm_last_error());
  options.tls = 1;
  CHECK_STATUS(LPM_ERR_UNAVAILABLE, lpm_connect_with_options(address.c_str(), &options, &client));
  std::string message = lpm_last_error();
  CHECK_MSG(contains(message, "700 ms over TLS trusting the default roots, without a client certificate"), message);
  std::cout << "  TLS, nothing listening: " << message << std::endl;
}

TEST_CASE(tls_options_errors) {
  const std::string dir = lpmtest::make_temp_dir("lpm-bridge-tls-");
  const std::string missing = dir + "/missing.pem", junk = dir + "/junk.pem", empty = dir + "/empty.pem",
                    truncated = dir + "/truncated.pem", damaged = dir + "/damaged.pem",
                    cert = dir + "/cert.pem", key = dir + "/key.pem", encrypted = dir + "/encrypted.key";
  write_file(junk, "not a certificate\n");
  write_file(empty, "");
  write_file(truncated, "-----BEGIN CERTIFICATE-----\nMAA=\n");
  write_file(damaged, "-----BEGIN CERTIFICATE-----\nMA*#A=\n-----END CERTIFICATE-----\n");
  write_file(cert, kCertificatePem);
  write_file(key, kKeyPem);
  write_file(encrypted, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n");
  lpm_connect_options options;

  lpm_connect_options_init(&options);
  options.tls = 2;
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"options.tls must be 0 (plaintext) or 1 (TLS), got 2"});

  // A certificate without its key (and the other way round) is refused before any file is read.
  lpm_connect_options_init(&options);
  options.tls_cert_file = missing.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"options.tls_cert_file " + missing + " is set without a key", "options.tls_key_file"});
  lpm_connect_options_init(&options);
  options.tls_key_pem = kKeyPem;
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"options.tls_key_pem is set without a certificate", "options.tls_cert_file"});

  lpm_connect_options_init(&options);
  options.tls_ca_file = cert.c_str();
  options.tls_ca_pem = kCertificatePem;
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"options.tls_ca_file and options.tls_ca_pem are both set"});

  // Files: missing, a directory, empty, not PEM, cut short, damaged.
  lpm_connect_options_init(&options);
  options.tls_ca_file = missing.c_str();
  check_refused(options, LPM_ERR_IO, {"options.tls_ca_file " + missing + ": no such file"});
  options.tls_ca_file = dir.c_str();
  check_refused(options, LPM_ERR_IO, {"options.tls_ca_file " + dir + ": is a directory"});
  options.tls_ca_file = empty.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"options.tls_ca_file " + empty + ": is empty"});
  options.tls_ca_file = junk.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"options.tls_ca_file " + junk + ": is not PEM (no '-----BEGIN' line); expected a CERTIFICATE block"});
  options.tls_ca_file = truncated.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"the CERTIFICATE block of line 1 has no '-----END CERTIFICATE-----' line"});
  options.tls_ca_file = damaged.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"the CERTIFICATE block of line 1 is not valid base64"});
  options.tls_ca_file = nullptr;
  options.tls_ca_pem = "not a certificate";
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"options.tls_ca_pem: is not PEM"});

  // The right kind in each field: a key where a certificate belongs, and the other way round.
  lpm_connect_options_init(&options);
  options.tls_ca_file = key.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"options.tls_ca_file " + key + ": holds no CERTIFICATE block (found: PRIVATE KEY)"});
  lpm_connect_options_init(&options);
  options.tls_cert_file = cert.c_str();
  options.tls_key_file = cert.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT,
                {"options.tls_key_file " + cert + ": holds no PRIVATE KEY block (found: CERTIFICATE)"});
  options.tls_key_file = encrypted.c_str();
  check_refused(options, LPM_ERR_INVALID_ARGUMENT, {"options.tls_key_file " + encrypted, "encrypted"});
  options.tls_key_file = missing.c_str();
  check_refused(options, LPM_ERR_IO, {"options.tls_key_file " + missing + ": no such file"});
  lpmtest::remove_tree(dir);
}

int main(int argc, char** argv) { return lpmtest::run_tests(argc, argv); }
