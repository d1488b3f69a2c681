// Integration: the C ABI against a live `lpm-npc serve` (or LPM_NPC_ADDRESS). Registers a sample
// character, opens an SHM session, streams a wav in real-time-sized chunks, reads >= 48 frames
// from the ring (seq rises, pts monotonic and on the documented clock, pixels vary), interrupts
// (PlaybackFinished{interrupted}), closes; then a short INLINE session with the event queue.
// `tls` and `mutual_tls` start their own daemons with certificates made by tests/tls_fixture.py
// and check that the right clients get in (files and PEM text, a session's frames over TLS) and
// the wrong ones are refused with LPM_ERR_UNAVAILABLE: plaintext, an untrusted CA, a wrong server
// name, no or an untrusted client certificate.
//
// The daemon on a busy 2-core machine generates slower than real time, so the test waits for
// frames and events with generous overall deadlines and never asserts timing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lpm_bridge.h"
#include "support.h"

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr size_t kSendSamples = 1600;  // 100 ms per AudioChunk, as a TTS player would deliver
constexpr size_t kFramesWanted = 48;

struct EventLog {
  std::mutex mutex;
  std::vector<lpm_event> events;

  static void callback(const lpm_event* event, void* user) {
    EventLog* log = static_cast<EventLog*>(user);
    std::lock_guard<std::mutex> lock(log->mutex);
    log->events.push_back(*event);
  }
  std::vector<lpm_event> snapshot() {
    std::lock_guard<std::mutex> lock(mutex);
    return events;
  }
};

struct ReadFrame {
  uint64_t seq;
  int64_t pts_samples;
  double pts_ms;
  bool speaking;
  double read_us;
  double mean_abs_diff_to_first;
};

bool is_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  uint64_t total = 0;
  for (size_t i = 0; i < a.size(); ++i) total += static_cast<uint64_t>(std::abs(int(a[i]) - int(b[i])));
  return static_cast<double>(total) / static_cast<double>(a.size());
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

void check_errors_on_live_daemon(lpm_client* client, const std::string& repo) {
  lpm_session_options options;
  lpm_session_options_init(&options);
  lpm_session* session = nullptr;
  options.character = "no-such-character";
  CHECK_STATUS(LPM_ERR_NOT_FOUND, lpm_session_open(client, &options, &session));
  CHECK(session == nullptr);
  std::cout << "  unknown character: " << lpm_last_error() << std::endl;
  options.character = "mira";
  options.fps = 30;
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_open(client, &options, &session));
  CHECK_MSG(std::string(lpm_last_error()).find("fps") != std::string::npos, lpm_last_error());
  std::cout << "  fps 30: " << lpm_last_error() << std::endl;
  options.fps = 0;
  options.delivery = 7;
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_open(client, &options, &session));
  CHECK(std::string(lpm_last_error()).find("options.delivery") != std::string::npos);
  CHECK_STATUS(LPM_ERR_IO, lpm_register_character_dir(client, (repo + "/samples/no-such-sheet").c_str(), "x", nullptr));
  CHECK(std::string(lpm_last_error()).find("sheet.toml") != std::string::npos);
}

// INLINE delivery with the polled event queue: idle frames come with no audio. Run first and
// kept to one chunk: a daemon that cannot keep real time refuses new sessions
// (RESOURCE_EXHAUSTED), and the SHM session below is the one that must get through.
void inline_session(lpm_client* client) {
  lpm_session_options options;
  lpm_session_options_init(&options);
  options.character = "mira";
  options.delivery = LPM_DELIVERY_INLINE;
  options.idle_policy = LPM_IDLE_ANIMATE_PRIORITY;  // its idle chunks are never skipped
  lpm_session* session = nullptr;
  CHECK_STATUS(LPM_OK, lpm_session_open(client, &options, &session));
  lpm_session_info info;
  CHECK_STATUS(LPM_OK, lpm_session_get_info(session, &info));
  CHECK(info.delivery == LPM_DELIVERY_INLINE && info.shm_name[0] == '\0');
  const size_t frame_bytes = static_cast<size_t>(info.width) * info.height * 4;
  size_t inline_frames = 0, queued_frame_events = 0;
  uint64_t min_seq = 0;
  lpm_frame_info frame;
  auto deadline = Clock::now() + seconds(300);
  while (inline_frames < info.frames_per_chunk) {
    CHECK_MSG(Clock::now() < deadline, "only " << inline_frames << " INLINE frames in 300 s");
    int status = lpm_session_next_frame(session, min_seq, nullptr, 0, &frame);
    if (status == LPM_OK) {
      CHECK(frame.pixels != nullptr && frame.seq >= min_seq && frame.format == LPM_FORMAT_RGBA8);
      CHECK(frame.idle == 1 && frame.speaking == 0);
      for (size_t i = 3; i < frame_bytes; i += 4) CHECK_MSG(frame.pixels[i] == 255, "alpha at byte " << i);
      min_seq = frame.seq + 1;
      ++inline_frames;
    } else {
      CHECK_STATUS(LPM_NO_DATA, status);
      std::this_thread::sleep_for(milliseconds(10));
    }
    lpm_event event;
    while (lpm_session_poll_event(session, &event) == LPM_OK) queued_frame_events += event.kind == LPM_EVENT_FRAME;
  }
  CHECK(queued_frame_events >= inline_frames);
  lpm_close_info closed;
  CHECK_STATUS(LPM_OK, lpm_session_close(session, &closed));
  CHECK(closed.frames >= inline_frames);
  std::cout << "RESULT inline frames_read=" << inline_frames << " frame_events=" << queued_frame_events << std::endl;
}

// A TLS daemon of its own: fast random test-tiny weights, no capacity measurement (the TLS
// cases check the transport, not generation).
lpmtest::DaemonOptions tls_daemon(const std::string& pki, bool require_client_certificate) {
  lpmtest::DaemonOptions options;
  options.allow_external = false;
  options.extra_args = {"--random-weights", "--preset", "test-tiny", "--no-measure-capacity",
                        "--tls-cert", pki + "/server.pem", "--tls-key", pki + "/server.key"};
  if (require_client_certificate) {
    options.extra_args.push_back("--tls-client-ca");
    options.extra_args.push_back(pki + "/ca.pem");
  }
  return options;
}

// Short: the refused cases wait the whole timeout (gRPC retries a failed handshake until then).
constexpr uint32_t kRefusedTimeoutMs = 3000;

// A client the daemon must not serve: refused when connecting (the connect message names how it
// connected: `needle`) or, should the TLS 1.3 handshake complete on the client's side before the
// daemon rejects its certificate, at the first call. Either way with LPM_ERR_UNAVAILABLE and a
// message naming the address; never served.
void check_refused(const std::string& address, const lpm_connect_options& options,
                   const std::string& what, const std::string& needle) {
  lpm_client* client = nullptr;
  int status = lpm_connect_with_options(address.c_str(), &options, &client);
  std::string message = lpm_last_error();
  if (status == LPM_OK) {
    CHECK(client != nullptr);
    status = lpm_client_ping(client, nullptr);
    message = lpm_last_error();
    lpm_client_destroy(client);
    CHECK_MSG(status == LPM_ERR_UNAVAILABLE, what << ": ping returned " << lpm_status_name(status) << ": " << message);
    std::cout << "  refused " << what << " at the first call: " << message << std::endl;
  } else {
    CHECK_MSG(status == LPM_ERR_UNAVAILABLE, what << ": connect returned " << lpm_status_name(status) << ": " << message);
    CHECK(client == nullptr);
    CHECK_MSG(message.find(needle) != std::string::npos, "'" << needle << "' not in: " << message);
    std::cout << "  refused " << what << " at connect: " << message << std::endl;
  }
  CHECK_MSG(message.find(address) != std::string::npos, message);
}

// Connects, pings (a unary call through the TLS channel) and returns the client.
lpm_client* connect_ok(const std::string& address, const lpm_connect_options& options, const std::string& what) {
  lpm_client* client = nullptr;
  CHECK_MSG(lpm_connect_with_options(address.c_str(), &options, &client) == LPM_OK, what << ": " << lpm_last_error());
  uint32_t stored = 0;
  CHECK_MSG(lpm_client_ping(client, &stored) == LPM_OK, what << ": ping: " << lpm_last_error());
  std::cout << "  connected " << what << " (" << stored << " versions stored)" << std::endl;
  return client;
}

// A session over the TLS channel: its Converse stream delivers a frame.
void one_frame_over(lpm_client* client, const std::string& repo) {
  lpm_character_info character;
  std::string sheet = repo + "/samples/characters/mira";
  CHECK_STATUS(LPM_OK, lpm_register_character_dir(client, sheet.c_str(), "mira", &character));
  lpm_session_options options;
  lpm_session_options_init(&options);
  options.character = "mira";
  options.idle_policy = LPM_IDLE_ANIMATE_PRIORITY;  // its idle chunks are never skipped
  lpm_session* session = nullptr;
  CHECK_STATUS(LPM_OK, lpm_session_open(client, &options, &session));
  lpm_session_info info;
  CHECK_STATUS(LPM_OK, lpm_session_get_info(session, &info));
  lpm_frame_info frame;
  auto deadline = Clock::now() + seconds(300);
  for (;;) {
    CHECK_MSG(Clock::now() < deadline, "no frame over TLS in 300 s");
    int status = lpm_session_next_frame(session, 0, nullptr, 0, &frame);
    if (status == LPM_OK) break;
    CHECK_STATUS(LPM_NO_DATA, status);
    std::this_thread::sleep_for(milliseconds(10));
  }
  CHECK(frame.width == info.width && frame.pixels != nullptr);
  CHECK_STATUS(LPM_OK, lpm_session_close(session, nullptr));
  std::cout << "  a " << info.width << "x" << info.height << " frame (seq " << frame.seq << ", "
            << (info.delivery == LPM_DELIVERY_SHM ? "SHM" : "INLINE") << ") over TLS" << std::endl;
}

}  // namespace

TEST_CASE(tls) {
  const std::string repo = lpmtest::env("LPM_REPO_ROOT", ".");
  const std::string pki = lpmtest::make_temp_dir("lpm-bridge-pki-");
  lpmtest::make_pki(pki);
  const std::string ca = pki + "/ca.pem", other_ca = pki + "/other-ca.pem";
  const std::string ca_text = lpmtest::read_text_file(ca);
  lpmtest::Daemon daemon(tls_daemon(pki, false));
  const std::string& address = daemon.address();

  lpm_connect_options options;
  lpm_connect_options_init(&options);
  options.timeout_ms = 120000;
  options.tls_ca_file = ca.c_str();
  lpm_client* client = connect_ok(address, options, "with tls_ca_file");
  one_frame_over(client, repo);
  lpm_client_destroy(client);

  lpm_connect_options_init(&options);
  options.timeout_ms = 120000;
  options.tls_ca_pem = ca_text.c_str();
  options.tls_server_name = "localhost";  // the certificate names both 127.0.0.1 and localhost
  lpm_client_destroy(connect_ok(address, options, "with tls_ca_pem and tls_server_name localhost"));

  lpm_connect_options_init(&options);
  options.timeout_ms = kRefusedTimeoutMs;
  check_refused(address, options, "a plaintext client", "in plaintext");
  options.tls_ca_file = other_ca.c_str();
  check_refused(address, options, "a client trusting another CA", "over TLS trusting options.tls_ca_file " + other_ca);
  options.tls_ca_file = ca.c_str();
  options.tls_server_name = "npc.example";
  check_refused(address, options, "a client expecting another server name", "expecting the name npc.example");
  // lpm_connect is the plaintext connection.
  lpm_client* plain = nullptr;
  CHECK_STATUS(LPM_ERR_UNAVAILABLE, lpm_connect(address.c_str(), nullptr, kRefusedTimeoutMs, &plain));
  CHECK(plain == nullptr);
  lpmtest::remove_tree(pki);
}

TEST_CASE(mutual_tls) {
  const std::string pki = lpmtest::make_temp_dir("lpm-bridge-pki-");
  lpmtest::make_pki(pki);
  const std::string ca = pki + "/ca.pem", cert = pki + "/client.pem", key = pki + "/client.key";
  const std::string cert_text = lpmtest::read_text_file(cert), key_text = lpmtest::read_text_file(key);
  const std::string other_cert = pki + "/other-client.pem", other_key = pki + "/other-client.key";
  lpmtest::Daemon daemon(tls_daemon(pki, true));
  const std::string& address = daemon.address();

  lpm_connect_options options;
  lpm_connect_options_init(&options);
  options.timeout_ms = 120000;
  options.tls_ca_file = ca.c_str();
  options.tls_cert_file = cert.c_str();
  options.tls_key_file = key.c_str();
  lpm_client_destroy(connect_ok(address, options, "with the client certificate files"));
  options.tls_cert_file = nullptr;
  options.tls_key_file = nullptr;
  options.tls_cert_pem = cert_text.c_str();
  options.tls_key_pem = key_text.c_str();
  lpm_client_destroy(connect_ok(address, options, "with the client certificate as PEM text"));

  options.timeout_ms = kRefusedTimeoutMs;
  options.tls_cert_pem = nullptr;
  options.tls_key_pem = nullptr;
  check_refused(address, options, "a TLS client without a certificate", "without a client certificate");
  options.tls_cert_file = other_cert.c_str();
  options.tls_key_file = other_key.c_str();
  check_refused(address, options, "a client certificate of another CA", "with the client certificate options.tls_cert_file " + other_cert);
  options.tls_cert_file = cert.c_str();
  check_refused(address, options, "a client key of another certificate", "the client key belongs to the client certificate");
  lpm_connect_options_init(&options);
  options.timeout_ms = kRefusedTimeoutMs;
  check_refused(address, options, "a plaintext client", "in plaintext");
  lpmtest::remove_tree(pki);
}

TEST_CASE(shm_session) {
  const std::string repo = lpmtest::env("LPM_REPO_ROOT", ".");
  lpmtest::Daemon daemon;
  lpm_client* client = nullptr;
  CHECK_STATUS(LPM_OK, lpm_connect(daemon.address().c_str(), daemon.token().c_str(), 120000, &client));
  uint32_t stored = 0;
  CHECK_STATUS(LPM_OK, lpm_client_ping(client, &stored));
  if (daemon.token().empty()) {  // NULL options: what lpm_connect does without a token
    lpm_client* defaults = nullptr;
    CHECK_STATUS(LPM_OK, lpm_connect_with_options(daemon.address().c_str(), nullptr, &defaults));
    CHECK_STATUS(LPM_OK, lpm_client_ping(defaults, nullptr));
    lpm_client_destroy(defaults);
  }

  lpm_character_info character;
  std::string sheet = repo + "/samples/characters/mira";
  CHECK_STATUS(LPM_OK, lpm_register_character_dir(client, sheet.c_str(), "mira", &character));
  CHECK(std::string(character.character_id) == "mira");
  CHECK(std::strlen(character.version) == 64 && is_hex(character.version));
  CHECK(character.reference_count == 10);
  lpm_character_info again;
  CHECK_STATUS(LPM_OK, lpm_register_character_dir(client, sheet.c_str(), "mira", &again));
  CHECK(again.created == 0 && std::string(again.version) == character.version);
  std::cout << "registered mira@" << std::string(character.version).substr(0, 12) << " (created "
            << character.created << ")" << std::endl;
  check_errors_on_live_daemon(client, repo);
  inline_session(client);

  lpm_session_options options;
  lpm_session_options_init(&options);
  options.character = "mira";
  options.delivery = LPM_DELIVERY_SHM;
  options.seed = 7;
  options.prompt = "cheerful";
  lpm_session* session = nullptr;
  CHECK_STATUS(LPM_OK, lpm_session_open(client, &options, &session));
  lpm_session_info info;
  CHECK_STATUS(LPM_OK, lpm_session_get_info(session, &info));
  CHECK(info.delivery == LPM_DELIVERY_SHM);
  CHECK(std::strlen(info.session_id) == 32 && is_hex(info.session_id));
  CHECK(std::string(info.shm_name) == std::string("lpmnpc-") + info.session_id);
  CHECK(std::string(info.character_version) == character.version);
  CHECK(info.width > 0 && info.width == info.height && info.fps == 24);
  CHECK(info.frames_per_chunk > 0 && info.samples_per_chunk == info.frames_per_chunk * 666);
  CHECK(info.shm_slots >= 2 && info.clock_origin_unix_ns > 0 && info.next_sample == 0);
  std::cout << "session " << info.session_id << ": " << info.width << "x" << info.height << ", "
            << info.frames_per_chunk << " frames per chunk, " << info.shm_slots << " ring slots"
            << std::endl;
  EventLog log;
  CHECK_STATUS(LPM_OK, lpm_session_set_event_callback(session, &EventLog::callback, &log));

  // Bad input is refused locally, before it could end the stream.
  int16_t silence[16] = {};
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_push_audio(session, 3, silence, 16, -1));
  CHECK(std::string(lpm_last_error()).find("track must be") != std::string::npos);
  float bad[2] = {0.0f, std::nanf("")};
  CHECK_STATUS(LPM_ERR_INVALID_ARGUMENT, lpm_session_push_audio_f32(session, LPM_TRACK_SPEAK, bad, 2, -1));
  CHECK(std::string(lpm_last_error()).find("samples[1]") != std::string::npos);
  std::vector<uint8_t> small(16);
  lpm_frame_info frame;
  CHECK_STATUS(LPM_ERR_BUFFER_TOO_SMALL, lpm_session_next_frame(session, 0, small.data(), small.size(), &frame));

  // The NPC's line, pushed in real time from its own thread (as an audio thread would).
  std::vector<int16_t> speech = lpmtest::read_wav_pcm16(repo + "/samples/audio/tts_sentence.wav");
  std::atomic<bool> stop_pushing{false};
  std::atomic<int> push_failures{0};
  std::thread pusher([&] {
    auto start = Clock::now();
    for (size_t at = 0; at < speech.size() && !stop_pushing; at += kSendSamples) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(at * 1000000 / LPM_SAMPLE_RATE));
      size_t n = std::min(kSendSamples, speech.size() - at);
      if (lpm_session_push_audio(session, LPM_TRACK_SPEAK, speech.data() + at, n, -1) != LPM_OK) ++push_failures;
    }
    if (!stop_pushing && lpm_session_segment_end(session, LPM_TRACK_SPEAK) != LPM_OK) ++push_failures;
  });

  const size_t frame_bytes = static_cast<size_t>(info.width) * info.height * 4;
  std::vector<uint8_t> pixels(frame_bytes), first, presented(frame_bytes);
  std::vector<ReadFrame> frames;
  uint64_t min_seq = 0, presented_count = 0, last_presented = 0;
  bool presented_any = false;
  auto read_available = [&] {
    for (;;) {
      auto t0 = Clock::now();
      int status = lpm_session_next_frame(session, min_seq, pixels.data(), pixels.size(), &frame);
      double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      if (status == LPM_NO_DATA) break;
      CHECK_STATUS(LPM_OK, status);
      CHECK(frame.pixels == pixels.data() && frame.width == info.width && frame.stride == info.width * 4);
      for (size_t i = 3; i < frame_bytes; i += 4) CHECK_MSG(pixels[i] == 255, "alpha at byte " << i);
      if (first.empty()) first = pixels;
      frames.push_back({frame.seq, frame.pts_samples, frame.pts_ms, frame.speaking != 0, us,
                        mean_abs_diff(first, pixels)});
      min_seq = frame.seq + 1;
    }
    // The presentation path, as a render loop calls it (session-owned buffer).
    int status = lpm_session_poll_frame(session, nullptr, 0, &frame);
    if (status == LPM_OK) {
      CHECK(frame.pixels != nullptr);
      CHECK(!presented_any || frame.seq > last_presented);
      presented_any = true;
      last_presented = frame.seq;
      ++presented_count;
    } else {
      CHECK_STATUS(LPM_NO_DATA, status);
    }
  };

  auto deadline = Clock::now() + seconds(600);
  while (frames.size() < kFramesWanted) {
    CHECK_MSG(Clock::now() < deadline, "only " << frames.size() << " frames in 600 s");
    read_available();
    std::this_thread::sleep_for(milliseconds(5));
  }
  stop_pushing = true;
  pusher.join();
  CHECK(push_failures == 0);

  // Barge-in: always answered by PlaybackFinished{interrupted}.
  size_t events_before = log.snapshot().size();
  CHECK_STATUS(LPM_OK, lpm_session_interrupt(session));
  lpm_event answer{};
  size_t answer_index = 0;
  deadline = Clock::now() + seconds(300);
  while (answer.kind == 0) {
    CHECK_MSG(Clock::now() < deadline, "no PlaybackFinished{interrupted} within 300 s");
    read_available();
    std::vector<lpm_event> events = log.snapshot();
    for (size_t i = events_before; i < events.size(); ++i) {
      if (events[i].kind == LPM_EVENT_PLAYBACK_FINISHED && events[i].interrupted) {
        answer = events[i];
        answer_index = i;
        break;
      }
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  // A few frames after the answer: none of them shows the cut speech.
  deadline = Clock::now() + seconds(120);
  for (;;) {
    std::vector<lpm_event> events = log.snapshot();
    size_t later = 0;
    for (size_t i = answer_index + 1; i < events.size(); ++i) later += events[i].kind == LPM_EVENT_FRAME;
    if (later >= info.frames_per_chunk || Clock::now() > deadline) break;
    read_available();
    std::this_thread::sleep_for(milliseconds(10));
  }

  lpm_close_info closed;
  CHECK_STATUS(LPM_OK, lpm_session_close(session, &closed));
  std::vector<lpm_event> events = log.snapshot();

  // seq rises; pts is monotonic and on the clock of docs/api.md.
  for (size_t i = 0; i < frames.size(); ++i) {
    const ReadFrame& f = frames[i];
    uint64_t chunk = f.seq / info.frames_per_chunk, index = f.seq % info.frames_per_chunk;
    CHECK_MSG(f.pts_samples == static_cast<int64_t>(chunk * info.samples_per_chunk + index * 666),
              "seq " << f.seq << " has pts " << f.pts_samples);
    CHECK(f.pts_ms == f.pts_samples / 16.0);
    if (i > 0) {
      CHECK_MSG(f.seq > frames[i - 1].seq, "seq " << f.seq << " after " << frames[i - 1].seq);
      CHECK(f.pts_samples > frames[i - 1].pts_samples);
    }
  }
  double max_diff = 0;
  for (const ReadFrame& f : frames) max_diff = std::max(max_diff, f.mean_abs_diff_to_first);
  CHECK_MSG(max_diff > 0.05, "the frames do not vary (max mean |diff| to the first " << max_diff << ")");

  // Events: frames came with them; the speech showed; the interrupt cut segment 1.
  size_t frame_events = 0, speaking_frames = 0, statuses = 0, started_segment = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const lpm_event& e = events[i];
    if (e.kind == LPM_EVENT_FRAME) {
      ++frame_events;
      if (i < answer_index) speaking_frames += e.speaking;
      if (i > answer_index) CHECK_MSG(!e.speaking, "frame " << e.seq << " after the interrupt answer shows speech");
    }
    if (e.kind == LPM_EVENT_STATUS) ++statuses;
    if (e.kind == LPM_EVENT_PLAYBACK_STARTED && started_segment == 0) started_segment = e.segment;
  }
  CHECK(frame_events >= frames.size());
  CHECK_MSG(speaking_frames > 0, "no frame showed the SPEAK audio");
  CHECK(started_segment == 1);
  CHECK_MSG(answer.segment == started_segment, "the interrupt answered segment " << answer.segment);
  CHECK(events.back().kind == LPM_EVENT_STREAM_ENDED && events.back().status == LPM_OK);
  CHECK(closed.frames >= frames.size() && closed.events_dropped == 0);
  CHECK(presented_count > 0);

  // CloseSession removed the ring.
  lpm_ring* ring = nullptr;
  CHECK_STATUS(LPM_ERR_RING, lpm_ring_open(info.shm_name, &ring));

  std::vector<double> read_us;
  for (const ReadFrame& f : frames) read_us.push_back(f.read_us);
  double mean = 0;
  for (double v : read_us) mean += v / static_cast<double>(read_us.size());
  std::cout << "RESULT shm frames_read=" << frames.size() << " seq " << frames.front().seq << ".."
            << frames.back().seq << " (" << speaking_frames << " speaking frame events, "
            << statuses << " status events, " << presented_count << " presented by poll_frame)"
            << " max_mean_abs_diff=" << max_diff << " interrupt_answer segment=" << answer.segment
            << " pts_ms=" << answer.pts_ms << " daemon_frames=" << closed.frames
            << " dropped_chunks=" << closed.dropped_chunks << std::endl;
  std::cout << "RESULT ring_read_us " << info.width << "x" << info.height << ": mean=" << mean
            << " p50=" << percentile(read_us, 0.5) << " p95=" << percentile(read_us, 0.95)
            << " max=" << percentile(read_us, 1.0) << std::endl;

  lpm_client_destroy(client);
}

int main(int argc, char** argv) { return lpmtest::run_tests(argc, argv); }
