#include "session.h"

#include <cmath>
#include <cstring>

namespace lpm {

namespace v1 = lpm_npc::v1;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr size_t kMaxEvents = 1024;                   // poll_event queue
constexpr size_t kMaxQueuedBytes = 16 * 1024 * 1024;  // unsent client events (~8 min of PCM16)
constexpr milliseconds kCloseWait{10000};             // for the daemon to end the stream on close

void check_track(int32_t track) {
  if (track != LPM_TRACK_SPEAK && track != LPM_TRACK_LISTEN)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      "track must be LPM_TRACK_SPEAK (1) or LPM_TRACK_LISTEN (2), got " +
                          std::to_string(track));
}

}  // namespace

// ---- open / close ------------------------------------------------------------------------------

std::unique_ptr<Session> Session::open(std::shared_ptr<ClientCore> client,
                                       const lpm_session_options& options) {
  if (options.character == nullptr || options.character[0] == '\0')
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "options.character is empty: give \"ID\" or \"ID@VERSION\"");
  if (options.delivery < LPM_DELIVERY_AUTO || options.delivery > LPM_DELIVERY_SHM)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      "options.delivery must be 0 (AUTO), 1 (INLINE) or 2 (SHM), got " +
                          std::to_string(options.delivery));
  if (options.idle_policy < LPM_IDLE_DEFAULT || options.idle_policy > LPM_IDLE_ANIMATE_PRIORITY)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      "options.idle_policy must be 0..2, got " + std::to_string(options.idle_policy));

  v1::OpenSessionRequest request;
  request.set_character(options.character);
  request.set_width(options.width);
  request.set_height(options.height);
  request.set_fps(options.fps);
  request.set_seed(options.seed);
  if (options.prompt != nullptr) request.set_prompt(options.prompt);
  request.set_idle_policy(static_cast<v1::IdlePolicy>(options.idle_policy));
  request.set_shm_slots(options.shm_slots);
  request.set_inline_format(v1::PIXEL_FORMAT_RGBA8);

  bool want_shm = options.delivery == LPM_DELIVERY_SHM ||
                  (options.delivery == LPM_DELIVERY_AUTO && client->is_local());
  std::unique_ptr<Session> session(new Session(client));
  v1::OpenSessionResponse response;
  for (;;) {
    request.set_delivery(want_shm ? v1::DELIVERY_SHM : v1::DELIVERY_INLINE);
    grpc::ClientContext context;
    client->prepare(&context, true);
    response.Clear();
    grpc::Status status = client->sessions().OpenSession(&context, request, &response);
    if (!status.ok()) throw rpc_error(status, std::string("OpenSession ") + options.character);
    session->info_ = lpm_session_info{};
    copy_to(session->info_.session_id, sizeof session->info_.session_id, response.session_id());
    if (!want_shm) break;
    try {
      try {
        session->ring_ = FrameRing::open(response.shm_name());
      } catch (const BridgeError&) {
        if (response.shm_path().empty()) throw;
        session->ring_ = FrameRing::open(response.shm_path());
      }
      const RingGeometry& g = session->ring_->geometry();
      if (g.width != response.width() || g.height != response.height())
        throw BridgeError(LPM_ERR_RING, "shm ring " + session->ring_->path() + " is " +
                                            std::to_string(g.width) + "x" + std::to_string(g.height) +
                                            ", the session is " + std::to_string(response.width()) +
                                            "x" + std::to_string(response.height()));
      break;
    } catch (const BridgeError&) {
      session->ring_.reset();
      session->close_remote_quietly();
      if (options.delivery == LPM_DELIVERY_SHM) throw;
      want_shm = false;  // AUTO: the daemon's host is not ours after all (a container, a VM)
    }
  }

  lpm_session_info& info = session->info_;
  copy_to(info.character_version, sizeof info.character_version, response.character_version());
  copy_to(info.shm_name, sizeof info.shm_name, response.shm_name());
  info.width = response.width();
  info.height = response.height();
  info.fps = response.fps();
  info.frames_per_chunk = response.frames_per_chunk();
  info.samples_per_chunk = response.samples_per_chunk();
  info.delivery = want_shm ? LPM_DELIVERY_SHM : LPM_DELIVERY_INLINE;
  uint32_t kept = options.shm_slots == 0 ? 8 : options.shm_slots;
  info.shm_slots = want_shm ? response.shm_slots() : std::max<uint32_t>(2, std::min<uint32_t>(kept, 64));
  session->frames_kept_ = info.shm_slots;
  session->frame_bytes_ = static_cast<size_t>(info.width) * info.height * 4;
  session->frame_buffer_.resize(session->frame_bytes_);
  if (!want_shm)
    session->inline_buffers_.assign(session->frames_kept_, std::vector<uint8_t>(session->frame_bytes_));

  try {
    session->start_stream(client->timeout());
  } catch (...) {
    session->close_remote_quietly();
    throw;
  }
  session->closed_ = false;  // from here on, close() (or the destructor) ends it
  return session;
}

void Session::start_stream(milliseconds header_timeout) {
  stream_context_ = std::make_unique<grpc::ClientContext>();
  client_->prepare(stream_context_.get(), false);  // the stream lives as long as the session
  stream_ = client_->sessions().Converse(stream_context_.get());
  v1::ClientEvent header;
  header.mutable_header()->set_session_id(info_.session_id);
  write_queue_.push_back(std::move(header));
  write_sizes_.push_back(0);
  writer_ = std::thread(&Session::writer_loop, this);
  reader_ = std::thread(&Session::reader_loop, this);
  reader_id_ = reader_.get_id();

  std::unique_lock<std::mutex> lock(state_mutex_);
  bool done = state_changed_.wait_for(lock, header_timeout,
                                      [&] { return header_received_ || stream_ended_; });
  if (header_received_) return;
  if (!done) {
    lock.unlock();
    stream_context_->TryCancel();
    stop_stream();
    throw BridgeError(LPM_ERR_DEADLINE_EXCEEDED,
                      "Converse " + std::string(info_.session_id) + ": no header within " +
                          std::to_string(header_timeout.count()) + " ms");
  }
  grpc::Status status = end_status_;
  lock.unlock();
  stop_stream();
  if (status.ok())
    throw BridgeError(LPM_ERR_RPC, "Converse " + std::string(info_.session_id) +
                                       ": the stream ended before its header");
  throw rpc_error(status, "Converse " + std::string(info_.session_id));
}

void Session::close_remote_quietly() {
  grpc::ClientContext context;
  client_->prepare(&context, true);
  v1::CloseSessionRequest request;
  request.set_session_id(info_.session_id);
  v1::CloseSessionResponse response;
  client_->sessions().CloseSession(&context, request, &response);  // best effort
}

// Waits for the reader (which joins the writer) after the stream was ended or cancelled.
void Session::stop_stream() {
  if (reader_.joinable()) reader_.join();
  if (writer_.joinable()) writer_.join();  // only when the reader never started
}

lpm_close_info Session::close() {
  if (closed_) throw BridgeError(LPM_ERR_CLOSED, "the session is already closed");
  closed_ = true;
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    closing_ = true;
    write_queue_.clear();  // audio for a session being closed is moot
    write_sizes_.clear();
    queued_bytes_ = 0;
  }
  grpc::ClientContext context;
  client_->prepare(&context, true);
  v1::CloseSessionRequest request;
  request.set_session_id(info_.session_id);
  v1::CloseSessionResponse response;
  grpc::Status status = client_->sessions().CloseSession(&context, request, &response);
  {
    // CloseSession ends the stream with OK; if the daemon does not, cancel it.
    std::unique_lock<std::mutex> lock(state_mutex_);
    if (!state_changed_.wait_for(lock, kCloseWait, [&] { return stream_ended_; })) {
      lock.unlock();
      stream_context_->TryCancel();
    }
  }
  stop_stream();
  ring_.reset();
  lpm_close_info out{};
  out.frames = response.frames();
  out.dropped_chunks = response.dropped_chunks();
  {
    std::lock_guard<std::mutex> lock(event_mutex_);
    out.events_dropped = events_dropped_;
  }
  if (!status.ok()) throw rpc_error(status, "CloseSession " + std::string(info_.session_id));
  return out;
}

Session::~Session() {
  if (closed_) return;
  try {
    close();
  } catch (const BridgeError&) {
    // The destructor has no caller to report to; lpm_session_close reports errors.
  }
}

// ---- the stream threads -----------------------------------------------------------------------

void Session::writer_loop() {
  for (;;) {
    v1::ClientEvent event;
    {
      std::unique_lock<std::mutex> lock(write_mutex_);
      write_ready_.wait(lock, [&] { return writer_stop_ || !write_queue_.empty(); });
      if (writer_stop_) return;
      event = std::move(write_queue_.front());
      write_queue_.pop_front();
      queued_bytes_ -= write_sizes_.front();
      write_sizes_.pop_front();
    }
    if (!stream_->Write(event)) {
      // The stream is gone; the reader sees it end and records why.
      std::lock_guard<std::mutex> lock(write_mutex_);
      write_failed_ = true;
      write_queue_.clear();
      write_sizes_.clear();
      queued_bytes_ = 0;
      return;
    }
  }
}

void Session::reader_loop() {
  v1::ServerEvent event;
  while (stream_->Read(&event)) handle(event);
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    writer_stop_ = true;
  }
  write_ready_.notify_all();
  writer_.join();
  grpc::Status status = stream_->Finish();
  lpm_event ended{};
  ended.kind = LPM_EVENT_STREAM_ENDED;
  ended.status = status_from_grpc(status.error_code());
  ended.grpc_code = static_cast<int32_t>(status.error_code());
  copy_to(ended.text, sizeof ended.text, status.error_message());
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    stream_ended_ = true;
    end_status_ = status;
  }
  state_changed_.notify_all();
  emit(ended);
}

void Session::handle(const v1::ServerEvent& event) {
  lpm_event out{};
  switch (event.event_case()) {
    case v1::ServerEvent::kHeader: {
      const v1::ConverseStarted& h = event.header();
      {
        std::lock_guard<std::mutex> lock(state_mutex_);
        info_.clock_origin_unix_ns = h.clock_origin_unix_ns();
        info_.next_sample = h.next_sample();
        header_received_ = true;
      }
      state_changed_.notify_all();
      return;
    }
    case v1::ServerEvent::kFrame:
      on_frame(event.frame());
      out.kind = LPM_EVENT_FRAME;
      out.seq = event.frame().seq();
      out.chunk_index = event.frame().chunk_index();
      out.pts_samples = event.frame().pts_samples();
      out.pts_ms = event.frame().pts_ms();
      out.speaking = event.frame().speaking();
      out.idle = event.frame().idle();
      break;
    case v1::ServerEvent::kPlaybackStarted:
      out.kind = LPM_EVENT_PLAYBACK_STARTED;
      out.segment = event.playback_started().segment();
      out.pts_samples = event.playback_started().pts_samples();
      out.pts_ms = event.playback_started().pts_ms();
      break;
    case v1::ServerEvent::kPlaybackFinished:
      out.kind = LPM_EVENT_PLAYBACK_FINISHED;
      out.segment = event.playback_finished().segment();
      out.pts_samples = event.playback_finished().pts_samples();
      out.pts_ms = event.playback_finished().pts_ms();
      out.interrupted = event.playback_finished().interrupted();
      break;
    case v1::ServerEvent::kStatus: {
      const v1::Status& s = event.status();
      out.kind = LPM_EVENT_STATUS;
      out.rtf = s.rtf();
      out.queue_depth = s.queue_depth();
      out.sessions = s.sessions();
      out.degraded = s.degraded();
      out.draining = s.draining();
      out.dropped_chunks = s.dropped_chunks();
      out.late_samples = s.late_samples();
      out.speak_buffered_samples = s.speak_buffered_samples();
      out.listen_buffered_samples = s.listen_buffered_samples();
      copy_to(out.text, sizeof out.text, s.degraded_reason());
      break;
    }
    default:
      return;  // a newer daemon's event kind: nothing to map it to
  }
  emit(out);
}

void Session::on_frame(const v1::Frame& frame) {
  FrameEntry entry{frame.seq(), frame.chunk_index(), frame.pts_samples(),
                   frame.generated_at_unix_ns(), 0, frame.speaking(), frame.idle()};
  std::lock_guard<std::mutex> lock(frame_mutex_);
  if (ring_) {
    if (frame.pixels_case() != v1::Frame::kShmSlot) return;  // not an SHM frame: nothing to read
    entry.slot = frame.shm_slot();
  } else {
    if (frame.pixels_case() != v1::Frame::kData) return;
    const std::string& data = frame.data();
    entry.slot = static_cast<uint32_t>(inline_received_ % frames_kept_);
    std::vector<uint8_t>& buffer = inline_buffers_[entry.slot];
    size_t pixels = static_cast<size_t>(info_.width) * info_.height;
    if (frame.format() == v1::PIXEL_FORMAT_RGBA8 && data.size() == pixels * 4) {
      std::memcpy(buffer.data(), data.data(), buffer.size());
    } else if (data.size() == pixels * 3) {  // an RGB8 daemon default: widen to RGBA8
      const uint8_t* src = reinterpret_cast<const uint8_t*>(data.data());
      for (size_t i = 0; i < pixels; ++i) {
        buffer[4 * i] = src[3 * i];
        buffer[4 * i + 1] = src[3 * i + 1];
        buffer[4 * i + 2] = src[3 * i + 2];
        buffer[4 * i + 3] = 255;
      }
    } else {
      return;  // a size that matches neither format: drop it rather than show garbage
    }
    ++inline_received_;
  }
  frames_.push_back(entry);
  while (frames_.size() > frames_kept_) frames_.pop_front();
}

void Session::emit(const lpm_event& event) {
  std::unique_lock<std::mutex> call_lock(callback_mutex_);
  lpm_event_callback callback;
  void* user;
  {
    std::lock_guard<std::mutex> lock(event_mutex_);
    callback = callback_;
    user = callback_user_;
    if (callback == nullptr) {
      if (events_.size() >= kMaxEvents) {
        events_.pop_front();
        ++events_dropped_;
      }
      events_.push_back(event);
      return;
    }
  }
  callback(&event, user);
}

void Session::set_event_callback(lpm_event_callback callback, void* user_data) {
  // From inside the callback (the reader thread) the call lock is already held by this thread.
  std::unique_lock<std::mutex> call_lock(callback_mutex_, std::defer_lock);
  if (std::this_thread::get_id() != reader_id_) call_lock.lock();
  std::lock_guard<std::mutex> lock(event_mutex_);
  callback_ = callback;
  callback_user_ = user_data;
}

bool Session::poll_event(lpm_event* out) {
  std::lock_guard<std::mutex> lock(event_mutex_);
  if (events_.empty()) return false;
  *out = events_.front();
  events_.pop_front();
  return true;
}

// ---- client events ----------------------------------------------------------------------------

std::string Session::ended_message() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  if (!stream_ended_) return "the session's stream has failed";
  return std::string("the session's stream has ended: ") + grpc_code_name(end_status_.error_code()) +
         (end_status_.error_message().empty() ? "" : ": " + end_status_.error_message());
}

void Session::enqueue(v1::ClientEvent&& event, size_t bytes) {
  bool ended;
  {
    std::lock_guard<std::mutex> state(state_mutex_);
    ended = stream_ended_;
  }
  std::unique_lock<std::mutex> lock(write_mutex_);
  if (closing_) throw BridgeError(LPM_ERR_CLOSED, "the session is closing");
  if (ended || write_failed_) {
    lock.unlock();
    throw BridgeError(LPM_ERR_CLOSED, ended_message());
  }
  if (queued_bytes_ + bytes > kMaxQueuedBytes)
    throw BridgeError(LPM_ERR_RESOURCE_EXHAUSTED,
                      "the bridge's send queue would hold " + std::to_string(queued_bytes_ + bytes) +
                          " bytes (limit " + std::to_string(kMaxQueuedBytes) +
                          "): the daemon is not reading; push audio in real time");
  write_queue_.push_back(std::move(event));
  write_sizes_.push_back(bytes);
  queued_bytes_ += bytes;
  lock.unlock();
  write_ready_.notify_one();
}

void Session::push_bytes(int32_t track, const char* bytes, size_t count, size_t sample_bytes,
                         v1::AudioEncoding encoding, int64_t sample_position) {
  check_track(track);
  for (size_t offset = 0; offset < count; offset += LPM_MAX_SAMPLES_PER_CHUNK) {
    size_t n = std::min<size_t>(LPM_MAX_SAMPLES_PER_CHUNK, count - offset);
    v1::ClientEvent event;
    v1::AudioChunk* chunk = event.mutable_audio();
    chunk->set_track(static_cast<v1::Track>(track));
    chunk->set_encoding(encoding);
    chunk->set_pcm(bytes + offset * sample_bytes, n * sample_bytes);
    if (sample_position >= 0) chunk->set_sample_position(sample_position + static_cast<int64_t>(offset));
    enqueue(std::move(event), n * sample_bytes);
  }
}

void Session::push_pcm16(int32_t track, const int16_t* pcm, size_t count, int64_t sample_position) {
  if (pcm == nullptr && count > 0) throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "pcm is NULL");
  // The wire format is little-endian PCM16, which is the host's layout (frame_ring.cpp checks).
  push_bytes(track, reinterpret_cast<const char*>(pcm), count, 2, v1::AUDIO_ENCODING_PCM16,
             sample_position);
}

void Session::push_f32(int32_t track, const float* samples, size_t count, int64_t sample_position) {
  if (samples == nullptr && count > 0) throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "samples is NULL");
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(samples[i]))
      throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                        "samples[" + std::to_string(i) + "] is not finite (NaN or Inf); samples must be in [-1, 1]");
  push_bytes(track, reinterpret_cast<const char*>(samples), count, 4, v1::AUDIO_ENCODING_FLOAT32,
             sample_position);
}

void Session::segment_end(int32_t track) {
  check_track(track);
  v1::ClientEvent event;
  event.mutable_segment_end()->set_track(static_cast<v1::Track>(track));
  enqueue(std::move(event), 0);
}

void Session::interrupt() {
  v1::ClientEvent event;
  event.mutable_interrupt();
  enqueue(std::move(event), 0);
}

void Session::set_prompt(const std::string& prompt) {
  v1::ClientEvent event;
  event.mutable_set_prompt()->set_text(prompt);
  enqueue(std::move(event), prompt.size());
}

// ---- frames -----------------------------------------------------------------------------------

uint8_t* Session::target(uint8_t* dst, size_t dst_bytes) {
  if (dst == nullptr) return frame_buffer_.data();
  if (dst_bytes < frame_bytes_)
    throw BridgeError(LPM_ERR_BUFFER_TOO_SMALL,
                      "dst_bytes " + std::to_string(dst_bytes) + " < width*height*4 = " +
                          std::to_string(frame_bytes_));
  return dst;
}

bool Session::copy_entry(const FrameEntry& entry, uint8_t* pixels) {
  if (!ring_) {
    std::lock_guard<std::mutex> lock(frame_mutex_);
    // The buffer is still this frame's while the entry is in the index.
    if (frames_.empty() || frames_.front().seq > entry.seq) return false;
    std::memcpy(pixels, inline_buffers_[entry.slot].data(), frame_bytes_);
    return true;
  }
  SlotMeta meta;
  SlotRead read = ring_->read_slot(entry.slot, pixels, &meta);
  return read == SlotRead::kOk && meta.frame_seq == entry.seq;  // else overwritten: skip it
}

void Session::fill_frame(const FrameEntry& entry, const uint8_t* pixels, lpm_frame_info* out) const {
  *out = lpm_frame_info{};
  out->seq = entry.seq;
  out->chunk_index = entry.chunk_index;
  out->pts_samples = entry.pts_samples;
  out->pts_ms = static_cast<double>(entry.pts_samples) / (LPM_SAMPLE_RATE / 1000.0);
  out->generated_unix_ns = entry.generated_unix_ns;
  out->width = info_.width;
  out->height = info_.height;
  out->stride = info_.width * 4;
  out->format = LPM_FORMAT_RGBA8;
  out->speaking = entry.speaking;
  out->idle = entry.idle;
  out->pixels = pixels;
}

lpm_status Session::next_frame(uint64_t min_seq, uint8_t* dst, size_t dst_bytes, lpm_frame_info* out) {
  std::lock_guard<std::mutex> read_lock(read_mutex_);
  uint8_t* pixels = target(dst, dst_bytes);
  for (;;) {
    FrameEntry entry;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(frame_mutex_);
      for (const FrameEntry& e : frames_) {
        if (e.seq >= min_seq) {
          entry = e;
          found = true;
          break;
        }
      }
    }
    if (!found) {
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (!stream_ended_) return LPM_NO_DATA;
    }
    if (!found) throw BridgeError(LPM_ERR_CLOSED, ended_message() + "; no frame with seq >= " + std::to_string(min_seq));
    if (copy_entry(entry, pixels)) {
      fill_frame(entry, pixels, out);
      return LPM_OK;
    }
    min_seq = entry.seq + 1;  // overwritten before we got to it
  }
}

lpm_status Session::poll_frame(uint8_t* dst, size_t dst_bytes, lpm_frame_info* out) {
  std::lock_guard<std::mutex> read_lock(read_mutex_);
  uint8_t* pixels = target(dst, dst_bytes);
  std::vector<FrameEntry> kept;
  {
    std::lock_guard<std::mutex> lock(frame_mutex_);
    kept.assign(frames_.begin(), frames_.end());
  }
  if (kept.empty()) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (!stream_ended_) return LPM_NO_DATA;
  }
  if (kept.empty()) throw BridgeError(LPM_ERR_CLOSED, ended_message());
  steady_clock::time_point now = steady_clock::now();
  const FrameEntry& oldest = kept.front();
  const FrameEntry& newest = kept.back();
  if (!presenting_) {
    anchor_pts_ = oldest.pts_samples;
    anchor_time_ = now;
  }
  double elapsed = std::chrono::duration<double>(now - anchor_time_).count();
  int64_t due = anchor_pts_ + static_cast<int64_t>(elapsed * LPM_SAMPLE_RATE);
  if (due > newest.pts_samples + LPM_SAMPLES_PER_FRAME || due < oldest.pts_samples) {
    // Generation is late (hold the newest and resume from it), or we fell behind what is kept.
    anchor_pts_ = due < oldest.pts_samples ? oldest.pts_samples : newest.pts_samples;
    anchor_time_ = now;
    due = anchor_pts_;
  }
  size_t pick = 0;
  for (size_t i = 0; i < kept.size(); ++i)
    if (kept[i].pts_samples <= due) pick = i;
  for (; pick < kept.size(); ++pick) {
    if (presenting_ && kept[pick].seq == presented_seq_) return LPM_NO_DATA;
    if (copy_entry(kept[pick], pixels)) {
      presenting_ = true;
      presented_seq_ = kept[pick].seq;
      fill_frame(kept[pick], pixels, out);
      return LPM_OK;
    }
  }
  return LPM_NO_DATA;  // every kept frame was overwritten while we read: try again next poll
}

}  // namespace lpm
