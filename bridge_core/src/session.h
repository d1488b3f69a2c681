// Session: one daemon session with its Converse stream (docs/api.md, "Sessions and Converse").
//
// It owns two threads: the reader receives ServerEvents (frames into the frame index, the rest
// into events) and the writer sends the queued ClientEvents, so the engine's threads never block
// on the network. Frames are read from the SHM ring (FrameRing, seqlock) or from the INLINE
// buffers it keeps; `next_frame` reads them in order, `poll_frame` paces them for presentation.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "frame_ring.h"
#include "lpm_bridge.h"

namespace lpm {

class Session {
 public:
  static std::unique_ptr<Session> open(std::shared_ptr<ClientCore> client,
                                       const lpm_session_options& options);
  ~Session();  // closes (ignoring errors) if close() was not called
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const lpm_session_info& info() const { return info_; }

  void push_pcm16(int32_t track, const int16_t* pcm, size_t count, int64_t sample_position);
  void push_f32(int32_t track, const float* samples, size_t count, int64_t sample_position);
  void segment_end(int32_t track);
  void interrupt();
  void set_prompt(const std::string& prompt);

  lpm_status next_frame(uint64_t min_seq, uint8_t* dst, size_t dst_bytes, lpm_frame_info* out);
  lpm_status poll_frame(uint8_t* dst, size_t dst_bytes, lpm_frame_info* out);

  void set_event_callback(lpm_event_callback callback, void* user_data);
  bool poll_event(lpm_event* out);

  // CloseSession, end the stream, join the threads. Throws the CloseSession error (after all
  // cleanup is done).
  lpm_close_info close();

 private:
  // A Frame event as kept in the frame index: where its pixels are and what it showed.
  struct FrameEntry {
    uint64_t seq;
    uint64_t chunk_index;
    int64_t pts_samples;
    int64_t generated_unix_ns;
    uint32_t slot;  // ring slot (SHM) or index into inline_buffers_ (INLINE)
    bool speaking;
    bool idle;
  };
  using Stream = grpc::ClientReaderWriter<lpm_npc::v1::ClientEvent, lpm_npc::v1::ServerEvent>;

  explicit Session(std::shared_ptr<ClientCore> client) : client_(std::move(client)) {}
  void start_stream(std::chrono::milliseconds header_timeout);
  void reader_loop();
  void writer_loop();
  void handle(const lpm_npc::v1::ServerEvent& event);
  void on_frame(const lpm_npc::v1::Frame& frame);
  void emit(const lpm_event& event);
  void enqueue(lpm_npc::v1::ClientEvent&& event, size_t bytes);
  void push_bytes(int32_t track, const char* bytes, size_t count, size_t sample_bytes,
                  lpm_npc::v1::AudioEncoding encoding, int64_t sample_position);
  void close_remote_quietly();
  void stop_stream();
  uint8_t* target(uint8_t* dst, size_t dst_bytes);
  // Copies `entry` into `pixels`; false if the ring slot was overwritten meanwhile.
  bool copy_entry(const FrameEntry& entry, uint8_t* pixels);
  void fill_frame(const FrameEntry& entry, const uint8_t* pixels, lpm_frame_info* out) const;
  std::string ended_message() const;

  std::shared_ptr<ClientCore> client_;
  lpm_session_info info_{};
  std::unique_ptr<FrameRing> ring_;  // SHM only
  size_t frame_bytes_ = 0;
  size_t frames_kept_ = 0;

  // The stream. stream_context_ is cancelled only by close() when the daemon does not end it.
  std::unique_ptr<grpc::ClientContext> stream_context_;
  std::unique_ptr<Stream> stream_;
  std::thread reader_;
  std::thread writer_;
  std::thread::id reader_id_;

  // Stream state, guarded by state_mutex_.
  mutable std::mutex state_mutex_;
  std::condition_variable state_changed_;
  bool header_received_ = false;
  bool stream_ended_ = false;
  grpc::Status end_status_;

  // Outgoing events, guarded by write_mutex_.
  std::mutex write_mutex_;
  std::condition_variable write_ready_;
  std::deque<lpm_npc::v1::ClientEvent> write_queue_;
  std::deque<size_t> write_sizes_;
  size_t queued_bytes_ = 0;
  bool writer_stop_ = false;
  bool closing_ = false;
  bool write_failed_ = false;

  // The frame index (the last frames_kept_ Frame events) and the INLINE pixels, guarded by
  // frame_mutex_ (held only for bookkeeping and INLINE copies, never across a ring read).
  std::mutex frame_mutex_;
  std::deque<FrameEntry> frames_;
  std::vector<std::vector<uint8_t>> inline_buffers_;
  uint64_t inline_received_ = 0;

  // The readers' side (next_frame, poll_frame), guarded by read_mutex_: the session-owned
  // pixel buffer and the presentation clock.
  std::mutex read_mutex_;
  std::vector<uint8_t> frame_buffer_;
  bool presenting_ = false;
  int64_t anchor_pts_ = 0;
  std::chrono::steady_clock::time_point anchor_time_;
  uint64_t presented_seq_ = 0;

  // Events: the callback (invoked with callback_mutex_ held, so that replacing it waits for a
  // running call) or the queue.
  std::mutex callback_mutex_;
  std::mutex event_mutex_;
  lpm_event_callback callback_ = nullptr;
  void* callback_user_ = nullptr;
  std::deque<lpm_event> events_;
  uint64_t events_dropped_ = 0;

  // True until open() has attached the stream: a half-opened session has nothing to close.
  bool closed_ = true;
};

}  // namespace lpm
