// The C ABI without a daemon: struct sizes (what bindings check their twins against), status
// names, argument checks with their messages, the per-thread last error, and connecting to a
// port where nothing listens.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
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

}  // namespace

TEST_CASE(struct_sizes) {
  CHECK(lpm_bridge_abi_version() == LPM_BRIDGE_ABI_VERSION);
  CHECK(lpm_struct_size("lpm_character_info") == sizeof(lpm_character_info));
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

int main(int argc, char** argv) { return lpmtest::run_tests(argc, argv); }
