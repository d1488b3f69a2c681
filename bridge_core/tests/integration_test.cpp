// Integration: the C ABI against a live `lpm-npc serve` (or LPM_NPC_ADDRESS). Registers a sample
// character, opens an SHM session, streams a wav in real-time-sized chunks, reads >= 48 frames
// from the ring (seq rises, pts monotonic and on the documented clock, pixels vary), interrupts
// (PlaybackFinished{interrupted}), closes; then a short INLINE session with the event queue.
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

}  // namespace

TEST_CASE(shm_session) {
  const std::string repo = lpmtest::env("LPM_REPO_ROOT", ".");
  lpmtest::Daemon daemon;
  lpm_client* client = nullptr;
  CHECK_STATUS(LPM_OK, lpm_connect(daemon.address().c_str(), daemon.token().c_str(), 120000, &client));
  uint32_t stored = 0;
  CHECK_STATUS(LPM_OK, lpm_client_ping(client, &stored));

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
