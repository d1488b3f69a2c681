// The C ABI (include/lpm_bridge.h): argument checks, and every C++ exception turned into an
// lpm_status plus this thread's last-error message. No exception crosses this boundary.
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "client.h"
#include "errors.h"
#include "frame_ring.h"
#include "lpm_bridge.h"
#include "session.h"
#include "tls.h"

struct lpm_client {
  std::shared_ptr<lpm::ClientCore> core;
};

struct lpm_session {
  std::unique_ptr<lpm::Session> session;
};

struct lpm_ring {
  std::unique_ptr<lpm::FrameRing> ring;
};

namespace {

using lpm::BridgeError;

template <typename F>
lpm_status guarded(F&& body) {
  try {
    return body();
  } catch (const BridgeError& e) {
    lpm::set_last_error(e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    lpm::set_last_error("out of memory");
    return LPM_ERR_INTERNAL;
  } catch (const std::exception& e) {
    lpm::set_last_error(std::string("internal error: ") + e.what());
    return LPM_ERR_INTERNAL;
  } catch (...) {
    lpm::set_last_error("internal error: unknown exception");
    return LPM_ERR_INTERNAL;
  }
}

void require(const void* pointer, const char* name) {
  if (pointer == nullptr)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

void fill_ring_frame(const lpm::FrameRing& ring, const lpm::SlotMeta& meta, const uint8_t* dst,
                     lpm_frame_info* out) {
  const lpm::RingGeometry& g = ring.geometry();
  *out = lpm_frame_info{};
  out->seq = meta.frame_seq;
  out->pts_samples = meta.pts_samples;
  out->pts_ms = static_cast<double>(meta.pts_samples) / (LPM_SAMPLE_RATE / 1000.0);
  out->generated_unix_ns = static_cast<int64_t>(meta.generated_unix_ns);
  out->width = g.width;
  out->height = g.height;
  out->stride = g.stride;
  out->format = LPM_FORMAT_RGBA8;
  out->pixels = dst;
}

lpm_status read_ring_slot(lpm_ring* ring, uint32_t slot, uint8_t* dst, size_t dst_bytes,
                          lpm_frame_info* out) {
  const lpm::FrameRing& r = *ring->ring;
  if (dst_bytes < r.geometry().frame_bytes())
    throw BridgeError(LPM_ERR_BUFFER_TOO_SMALL,
                      "dst_bytes " + std::to_string(dst_bytes) + " < width*height*4 = " +
                          std::to_string(r.geometry().frame_bytes()));
  lpm::SlotMeta meta;
  switch (r.read_slot(slot, dst, &meta)) {
    case lpm::SlotRead::kOk:
      fill_ring_frame(r, meta, dst, out);
      return LPM_OK;
    case lpm::SlotRead::kEmpty:
      return LPM_NO_DATA;
    case lpm::SlotRead::kBusy:
    default:
      throw BridgeError(LPM_ERR_RING_BUSY, "slot " + std::to_string(slot) + " of " + r.path() +
                                               " kept changing during " +
                                               std::to_string(lpm::kDefaultReadRetries) +
                                               " read attempts (the writer is lapping the reader)");
  }
}

}  // namespace

extern "C" {

uint32_t lpm_bridge_abi_version(void) { return LPM_BRIDGE_ABI_VERSION; }

uint32_t lpm_struct_size(const char* struct_name) {
  if (struct_name == nullptr) return 0;
  struct Entry {
    const char* name;
    uint32_t size;
  };
  static const Entry kSizes[] = {
      {"lpm_character_info", sizeof(lpm_character_info)},
      {"lpm_connect_options", sizeof(lpm_connect_options)},
      {"lpm_session_options", sizeof(lpm_session_options)},
      {"lpm_session_info", sizeof(lpm_session_info)},
      {"lpm_frame_info", sizeof(lpm_frame_info)},
      {"lpm_event", sizeof(lpm_event)},
      {"lpm_close_info", sizeof(lpm_close_info)},
      {"lpm_ring_info", sizeof(lpm_ring_info)},
  };
  for (const Entry& e : kSizes)
    if (std::strcmp(e.name, struct_name) == 0) return e.size;
  return 0;
}

const char* lpm_status_name(int32_t status) { return lpm::status_name(status); }

const char* lpm_last_error(void) { return lpm::last_error(); }

// ---- client ------------------------------------------------------------------------------------

lpm_status lpm_connect(const char* address, const char* token, uint32_t timeout_ms,
                       lpm_client** out_client) {
  lpm_connect_options options;
  lpm_connect_options_init(&options);
  options.token = token;
  options.timeout_ms = timeout_ms;
  return lpm_connect_with_options(address, &options, out_client);
}

void lpm_connect_options_init(lpm_connect_options* options) {
  if (options == nullptr) return;
  *options = lpm_connect_options{};
}

lpm_status lpm_connect_with_options(const char* address, const lpm_connect_options* options,
                                    lpm_client** out_client) {
  return guarded([&] {
    require(out_client, "out_client");
    *out_client = nullptr;
    require(address, "address");
    lpm_connect_options defaults;
    lpm_connect_options_init(&defaults);
    const lpm_connect_options& o = options != nullptr ? *options : defaults;
    std::optional<lpm::TlsMaterial> tls = lpm::load_tls(o);
    auto client = std::make_unique<lpm_client>();
    client->core = lpm::ClientCore::connect(address, o.token ? o.token : "", o.timeout_ms, tls);
    *out_client = client.release();
    return LPM_OK;
  });
}

void lpm_client_destroy(lpm_client* client) { delete client; }

lpm_status lpm_client_ping(lpm_client* client, uint32_t* out_character_count) {
  return guarded([&] {
    require(client, "client");
    uint32_t n = client->core->ping();
    if (out_character_count != nullptr) *out_character_count = n;
    return LPM_OK;
  });
}

lpm_status lpm_register_character_dir(lpm_client* client, const char* sheet_dir,
                                      const char* character_id, lpm_character_info* out_info) {
  return guarded([&] {
    require(client, "client");
    require(sheet_dir, "sheet_dir");
    lpm_character_info info = client->core->register_dir(sheet_dir, character_id ? character_id : "");
    if (out_info != nullptr) *out_info = info;
    return LPM_OK;
  });
}

// ---- session -----------------------------------------------------------------------------------

void lpm_session_options_init(lpm_session_options* options) {
  if (options == nullptr) return;
  *options = lpm_session_options{};
  options->delivery = LPM_DELIVERY_AUTO;
  options->idle_policy = LPM_IDLE_DEFAULT;
}

lpm_status lpm_session_open(lpm_client* client, const lpm_session_options* options,
                            lpm_session** out_session) {
  return guarded([&] {
    require(out_session, "out_session");
    *out_session = nullptr;
    require(client, "client");
    require(options, "options");
    auto session = std::make_unique<lpm_session>();
    session->session = lpm::Session::open(client->core, *options);
    *out_session = session.release();
    return LPM_OK;
  });
}

lpm_status lpm_session_get_info(lpm_session* session, lpm_session_info* out_info) {
  return guarded([&] {
    require(session, "session");
    require(out_info, "out_info");
    *out_info = session->session->info();
    return LPM_OK;
  });
}

lpm_status lpm_session_push_audio(lpm_session* session, int32_t track, const int16_t* pcm,
                                  size_t count, int64_t sample_position) {
  return guarded([&] {
    require(session, "session");
    session->session->push_pcm16(track, pcm, count, sample_position);
    return LPM_OK;
  });
}

lpm_status lpm_session_push_audio_f32(lpm_session* session, int32_t track, const float* samples,
                                      size_t count, int64_t sample_position) {
  return guarded([&] {
    require(session, "session");
    session->session->push_f32(track, samples, count, sample_position);
    return LPM_OK;
  });
}

lpm_status lpm_session_segment_end(lpm_session* session, int32_t track) {
  return guarded([&] {
    require(session, "session");
    session->session->segment_end(track);
    return LPM_OK;
  });
}

lpm_status lpm_session_interrupt(lpm_session* session) {
  return guarded([&] {
    require(session, "session");
    session->session->interrupt();
    return LPM_OK;
  });
}

lpm_status lpm_session_set_prompt(lpm_session* session, const char* prompt) {
  return guarded([&] {
    require(session, "session");
    require(prompt, "prompt");
    session->session->set_prompt(prompt);
    return LPM_OK;
  });
}

lpm_status lpm_session_next_frame(lpm_session* session, uint64_t min_seq, uint8_t* dst,
                                  size_t dst_bytes, lpm_frame_info* out_frame) {
  return guarded([&] {
    require(session, "session");
    require(out_frame, "out_frame");
    return session->session->next_frame(min_seq, dst, dst_bytes, out_frame);
  });
}

lpm_status lpm_session_poll_frame(lpm_session* session, uint8_t* dst, size_t dst_bytes,
                                  lpm_frame_info* out_frame) {
  return guarded([&] {
    require(session, "session");
    require(out_frame, "out_frame");
    return session->session->poll_frame(dst, dst_bytes, out_frame);
  });
}

lpm_status lpm_session_set_event_callback(lpm_session* session, lpm_event_callback callback,
                                          void* user_data) {
  return guarded([&] {
    require(session, "session");
    session->session->set_event_callback(callback, user_data);
    return LPM_OK;
  });
}

lpm_status lpm_session_poll_event(lpm_session* session, lpm_event* out_event) {
  return guarded([&] {
    require(session, "session");
    require(out_event, "out_event");
    return session->session->poll_event(out_event) ? LPM_OK : LPM_NO_DATA;
  });
}

lpm_status lpm_session_close(lpm_session* session, lpm_close_info* out_info) {
  return guarded([&] {
    require(session, "session");
    std::unique_ptr<lpm_session> owned(session);  // freed whatever close() reports
    lpm_close_info info = owned->session->close();
    if (out_info != nullptr) *out_info = info;
    return LPM_OK;
  });
}

// ---- ring --------------------------------------------------------------------------------------

lpm_status lpm_ring_open(const char* name_or_path, lpm_ring** out_ring) {
  return guarded([&] {
    require(out_ring, "out_ring");
    *out_ring = nullptr;
    require(name_or_path, "name_or_path");
    auto ring = std::make_unique<lpm_ring>();
    ring->ring = lpm::FrameRing::open(name_or_path);
    *out_ring = ring.release();
    return LPM_OK;
  });
}

void lpm_ring_close(lpm_ring* ring) { delete ring; }

lpm_status lpm_ring_get_info(lpm_ring* ring, lpm_ring_info* out_info) {
  return guarded([&] {
    require(ring, "ring");
    require(out_info, "out_info");
    const lpm::FrameRing& r = *ring->ring;
    const lpm::RingGeometry& g = r.geometry();
    *out_info = lpm_ring_info{};
    out_info->frames_written = r.frames_written();
    out_info->heartbeat_ns = r.heartbeat_ns();
    out_info->width = g.width;
    out_info->height = g.height;
    out_info->stride = g.stride;
    out_info->format = g.format;
    out_info->slot_count = g.slot_count;
    out_info->writer_pid = r.writer_pid();
    out_info->closed = r.closed() ? 1 : 0;
    return LPM_OK;
  });
}

lpm_status lpm_ring_read_slot(lpm_ring* ring, uint32_t slot, uint8_t* dst, size_t dst_bytes,
                              lpm_frame_info* out_frame) {
  return guarded([&] {
    require(ring, "ring");
    require(dst, "dst");
    require(out_frame, "out_frame");
    return read_ring_slot(ring, slot, dst, dst_bytes, out_frame);
  });
}

lpm_status lpm_ring_read_latest(lpm_ring* ring, uint8_t* dst, size_t dst_bytes,
                                lpm_frame_info* out_frame) {
  return guarded([&] {
    require(ring, "ring");
    require(dst, "dst");
    require(out_frame, "out_frame");
    uint64_t written = ring->ring->frames_written();
    if (written == 0) return LPM_NO_DATA;
    uint32_t slot = static_cast<uint32_t>((written - 1) % ring->ring->geometry().slot_count);
    return read_ring_slot(ring, slot, dst, dst_bytes, out_frame);
  });
}

}  // extern "C"
