/*
 * lpm_bridge.h: the C ABI of bridge_core, the native bridge between a game engine and the
 * lpm-npc daemon (`lpm-npc serve`, API in docs/api.md).
 *
 * What it does: a gRPC control client (register a character, open a session, stream SPEAK and
 * LISTEN audio, segment end, interrupt, set prompt, close) and a frame reader that copies video
 * frames out of the daemon's shared-memory ring (docs/shm-ring.md) with a seqlock, or out of
 * INLINE Frame events when the daemon runs on another host. The Unreal plugin (unreal_bridge/)
 * and the Unity package (unity_bridge/) are thin layers over this header; nothing here knows
 * about either engine.
 *
 * Errors. Every function that can fail returns an lpm_status: LPM_OK (0), LPM_NO_DATA (1, not an
 * error: no new frame or event yet), or a negative LPM_ERR_*. After a negative status,
 * lpm_last_error() describes it in one line (naming the field and the allowed range, or the
 * daemon's gRPC status and message). Daemon-side errors map to the LPM_ERR_* of the same name
 * as the gRPC code; other gRPC codes map to LPM_ERR_RPC.
 *
 * Threads.
 *  - lpm_last_error() is per calling thread: it describes the last failed call made *on that
 *    thread*; the pointer stays valid until that thread's next call into the bridge.
 *  - lpm_client: every function may be called from any thread, concurrently, except
 *    lpm_client_destroy.
 *  - lpm_session: push_audio / segment_end / interrupt / set_prompt never block on the network:
 *    they queue the event for the session's writer thread and return. They may be called from
 *    any thread (e.g. an audio thread and the game thread at once); events from one thread keep
 *    their order. The frame functions (next_frame, poll_frame) may be called from any thread;
 *    they serialize on the session. poll_event may be called from any thread.
 *  - Each session runs two threads of its own: a stream reader (receives frames and events) and
 *    a writer (sends the queued client events). The event callback, when set, runs on the reader
 *    thread: it must return quickly, must not call lpm_session_close on its own session, and
 *    should only copy the event (the lpm_event pointer is valid during the call only).
 *
 * Ownership.
 *  - lpm_connect / lpm_connect_with_options create a client; free it with lpm_client_destroy.
 *    Sessions keep what they need of the client alive, so a client may be destroyed before its
 *    sessions.
 *  - lpm_session_open creates a session; free it with lpm_session_close (exactly once; after it
 *    returns, whatever its status, the handle is invalid).
 *  - Strings passed in are copied before the call returns. Strings in output structs are fixed
 *    char arrays, NUL-terminated UTF-8, owned by the caller's struct.
 *  - Frame pixels: pass your own buffer (`dst`, at least width*height*4 bytes) and the frame is
 *    copied into it, or pass dst = NULL and the frame is copied into a buffer the session owns;
 *    then lpm_frame_info.pixels points to it and stays valid until the next frame call on that
 *    session or its close. The session's buffer is allocated once (not per frame).
 *  - lpm_ring_open maps a ring read-only; free it with lpm_ring_close.
 *
 * All structs in this header have a twin in unity_bridge/Runtime/Internal/NativeBridge.cs with
 * the same fields in the same order; lpm_struct_size() lets a binding check its twins at load.
 */
#ifndef LPM_BRIDGE_H
#define LPM_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(LPM_BRIDGE_BUILD)
#define LPM_BRIDGE_API __declspec(dllexport)
#else
#define LPM_BRIDGE_API __declspec(dllimport)
#endif
#else
#define LPM_BRIDGE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change of a function or struct in this header. */
#define LPM_BRIDGE_ABI_VERSION 1

/* Status codes. */
typedef enum lpm_status {
    LPM_OK = 0,
    /* Not an error: no frame newer than asked for / no queued event yet. */
    LPM_NO_DATA = 1,
    /* A bad argument to a bridge function (NULL, unknown enum value, range), or the daemon said
     * INVALID_ARGUMENT (bad id, size, fps, PCM, sample position). */
    LPM_ERR_INVALID_ARGUMENT = -1,
    /* Unknown character or session (daemon NOT_FOUND). */
    LPM_ERR_NOT_FOUND = -2,
    /* The daemon cannot be reached within the timeout, or it is draining (UNAVAILABLE). */
    LPM_ERR_UNAVAILABLE = -3,
    /* A limit: session count, degraded daemon, buffered audio, or the bridge's own send queue. */
    LPM_ERR_RESOURCE_EXHAUSTED = -4,
    /* A Converse stream is already attached to the session (FAILED_PRECONDITION). */
    LPM_ERR_FAILED_PRECONDITION = -5,
    /* A token is required, or the one given is wrong (UNAUTHENTICATED). */
    LPM_ERR_UNAUTHENTICATED = -6,
    /* A call did not finish within the client's timeout (DEADLINE_EXCEEDED). */
    LPM_ERR_DEADLINE_EXCEEDED = -7,
    /* Any other gRPC failure; lpm_last_error() names the gRPC code. */
    LPM_ERR_RPC = -8,
    /* The shared-memory ring cannot be opened, or its header is not a version-1 RGBA8 ring. */
    LPM_ERR_RING = -9,
    /* A ring slot kept changing under the reader (the writer lapped it); try again. */
    LPM_ERR_RING_BUSY = -10,
    /* The session's stream has ended (lpm_last_error() says why), or the ring is closed and has
     * no newer frame. */
    LPM_ERR_CLOSED = -11,
    /* dst is smaller than width * height * 4 bytes. */
    LPM_ERR_BUFFER_TOO_SMALL = -12,
    /* A local file (a character sheet, a TLS certificate or key) could not be read. */
    LPM_ERR_IO = -13,
    /* A bug in the bridge; lpm_last_error() has the details. */
    LPM_ERR_INTERNAL = -14
} lpm_status;

/* Audio tracks (proto lpm_npc.v1.Track). */
typedef enum lpm_track {
    LPM_TRACK_SPEAK = 1,  /* the NPC's own dialogue (TTS): lip-sync and expression */
    LPM_TRACK_LISTEN = 2  /* the player's microphone: listening reactions */
} lpm_track;

/* Frame delivery. */
typedef enum lpm_delivery {
    /* SHM when the daemon's address is this host (127.0.0.1, localhost, ::1, unix:) and its ring
     * can be mapped; INLINE otherwise. */
    LPM_DELIVERY_AUTO = 0,
    LPM_DELIVERY_INLINE = 1, /* pixels in the Frame events */
    LPM_DELIVERY_SHM = 2     /* pixels in the shared-memory ring; fails if it cannot be mapped */
} lpm_delivery;

/* Idle policy (proto lpm_npc.v1.IdlePolicy); 0 = the daemon's default (ANIMATE). */
typedef enum lpm_idle_policy {
    LPM_IDLE_DEFAULT = 0,
    LPM_IDLE_ANIMATE = 1,          /* idle chunks may be skipped under load */
    LPM_IDLE_ANIMATE_PRIORITY = 2  /* never skipped (the character the camera is on) */
} lpm_idle_policy;

/* Pixel formats of lpm_frame_info.format. Frames are always RGBA8, rows top to bottom. */
#define LPM_FORMAT_RGBA8 1

/* Audio clock: 16 kHz samples; a video frame is 666 samples (24 fps). */
#define LPM_SAMPLE_RATE 16000
#define LPM_SAMPLES_PER_FRAME 666
/* The daemon's limit of samples per AudioChunk; longer pushes are split by the bridge. */
#define LPM_MAX_SAMPLES_PER_CHUNK 32000

/* Event kinds of lpm_event.kind. */
typedef enum lpm_event_kind {
    LPM_EVENT_FRAME = 1,             /* a Frame event arrived (seq, chunk_index, pts, speaking, idle) */
    LPM_EVENT_PLAYBACK_STARTED = 2,  /* a SPEAK segment starts showing at pts: start the NPC audio */
    LPM_EVENT_PLAYBACK_FINISHED = 3, /* shown to its end, or cut short (interrupted = 1) */
    LPM_EVENT_STATUS = 4,            /* about once a second and when `degraded` changes */
    LPM_EVENT_STREAM_ENDED = 5       /* the Converse stream ended; no more events follow */
} lpm_event_kind;

typedef struct lpm_client lpm_client;
typedef struct lpm_session lpm_session;
typedef struct lpm_ring lpm_ring;

/* Result of lpm_register_character_dir. C# twin: LpmCharacterInfo. */
typedef struct lpm_character_info {
    int32_t created;          /* 1 if this version was new, 0 if it was already stored */
    uint32_t reference_count; /* images in the sheet */
    char character_id[72];
    char version[72];         /* 64 lowercase hex digits: the content address */
} lpm_character_info;

/* Options of lpm_connect_with_options; lpm_connect_options_init fills the defaults (no token,
 * 30 s, plaintext). Every string is NUL-terminated UTF-8; NULL and "" both mean "not set".
 *
 * TLS is on when `tls` is 1 or any tls_* field is set; it matches `lpm-npc serve --tls-cert F
 * --tls-key F [--tls-client-ca F]` and `lpm-npc client --tls-ca F [--tls-cert F --tls-key F]`.
 * Each piece of TLS material is given either as a PEM file (`*_file`: a path the bridge reads
 * during the call, for tools, dedicated servers and desktop builds with loose files) or as the
 * PEM text itself (`*_pem`: for engines whose packaged files are not plain files, e.g. an Unreal
 * .pak or Android StreamingAssets; load them with the engine's file API and pass the text). Set
 * at most one of the two for each piece. A client certificate needs its key and the other way
 * round (mutual TLS, for a daemon started with --tls-client-ca). Keys must be unencrypted PEM
 * (PKCS#8 "PRIVATE KEY", or "EC PRIVATE KEY" / "RSA PRIVATE KEY"). With neither tls_ca_file nor
 * tls_ca_pem the daemon's certificate must chain to gRPC's default roots (the roots.pem it was
 * installed with; the GRPC_DEFAULT_SSL_ROOTS_FILE_PATH environment variable overrides them),
 * as for a certificate from a public CA.
 * C# twin: LpmConnectOptions. */
typedef struct lpm_connect_options {
    const char* token;           /* sent as `authorization: Bearer <token>`; NULL = none */
    uint32_t timeout_ms;         /* 0 = 30000: bounds the connection and every later unary call */
    int32_t tls;                 /* 1 = TLS; 0 = plaintext unless a tls_* field is set */
    const char* tls_ca_file;     /* the CA certificate(s) to trust, PEM (see above for neither) */
    const char* tls_ca_pem;
    const char* tls_cert_file;   /* mutual TLS: the client certificate (chain), PEM */
    const char* tls_cert_pem;
    const char* tls_key_file;    /* mutual TLS: that certificate's private key, PEM */
    const char* tls_key_pem;
    const char* tls_server_name; /* the name the daemon's certificate must carry when it is not the
                                  * host of `address` (an IP address with a certificate for
                                  * "npc.lan"); NULL = the host */
} lpm_connect_options;

/* Options of lpm_session_open; lpm_session_options_init fills the defaults.
 * C# twin: LpmSessionOptions. */
typedef struct lpm_session_options {
    const char* character; /* "ID" (newest version) or "ID@VERSION"; required */
    const char* prompt;    /* style and emotion prompt, at most 512 characters; NULL = none */
    uint64_t seed;         /* noise seed: same seed, character and inputs give the same frames */
    uint32_t width;        /* frame side in px, even, 32..1024; 0 = the model's native size */
    uint32_t height;       /* must equal width (frames are square); 0 = native */
    uint32_t fps;          /* 0 or 24 */
    int32_t delivery;      /* lpm_delivery; default LPM_DELIVERY_AUTO */
    int32_t idle_policy;   /* lpm_idle_policy; default LPM_IDLE_DEFAULT */
    uint32_t shm_slots;    /* SHM ring slots 2..64, 0 = 8; also the INLINE frames kept */
} lpm_session_options;

/* What the daemon granted. C# twin: LpmSessionInfo. */
typedef struct lpm_session_info {
    int64_t clock_origin_unix_ns; /* wall time of session-clock sample 0 */
    int64_t next_sample;          /* the first sample this stream generates */
    uint32_t width;
    uint32_t height;
    uint32_t fps;
    uint32_t frames_per_chunk;
    uint32_t samples_per_chunk;
    int32_t delivery;             /* LPM_DELIVERY_INLINE or LPM_DELIVERY_SHM, as granted */
    uint32_t shm_slots;           /* ring slots (SHM) or INLINE frames kept */
    uint32_t reserved;            /* zero */
    char session_id[40];          /* 32 lowercase hex digits */
    char character_version[72];
    char shm_name[128];           /* SHM only: the POSIX shared-memory name */
} lpm_session_info;

/* One copied frame. C# twin: LpmFrameInfo. */
typedef struct lpm_frame_info {
    uint64_t seq;              /* Frame.seq: 0, 1, 2, ... (a skipped chunk leaves a gap) */
    uint64_t chunk_index;      /* from the Frame event (0 from lpm_ring_read_*) */
    int64_t pts_samples;       /* presentation time on the session's 16 kHz audio clock */
    double pts_ms;             /* pts_samples / 16 */
    int64_t generated_unix_ns; /* when the writer wrote the frame */
    uint32_t width;
    uint32_t height;
    uint32_t stride;           /* bytes per row = width * 4 */
    uint32_t format;           /* LPM_FORMAT_RGBA8 */
    int32_t speaking;          /* the chunk had SPEAK audio (from the Frame event; 0 from lpm_ring_read_*) */
    int32_t idle;              /* the chunk had no audio on either track (likewise) */
    const uint8_t* pixels;     /* where the frame was copied: dst, or the session's buffer */
} lpm_frame_info;

/* An event from the session's stream. Only the fields of its kind are set; the rest are zero.
 * C# twin: LpmEvent. */
typedef struct lpm_event {
    int32_t kind;                     /* lpm_event_kind */
    int32_t interrupted;              /* PLAYBACK_FINISHED: 1 when cut short by an Interrupt */
    uint64_t segment;                 /* PLAYBACK_*: 1, 2, ...; 0 = interrupt with nothing playing */
    int64_t pts_samples;              /* PLAYBACK_*, FRAME */
    double pts_ms;                    /* PLAYBACK_*, FRAME */
    uint64_t seq;                     /* FRAME */
    uint64_t chunk_index;             /* FRAME */
    int32_t speaking;                 /* FRAME */
    int32_t idle;                     /* FRAME */
    double rtf;                       /* STATUS: compute time / media time */
    uint32_t queue_depth;             /* STATUS */
    uint32_t sessions;                /* STATUS */
    int32_t degraded;                 /* STATUS: the daemon cannot keep real time */
    int32_t draining;                 /* STATUS: the daemon is shutting down */
    uint64_t dropped_chunks;          /* STATUS */
    uint64_t late_samples;            /* STATUS */
    uint64_t speak_buffered_samples;  /* STATUS */
    uint64_t listen_buffered_samples; /* STATUS */
    int32_t status;                   /* STREAM_ENDED: LPM_OK when it ended normally */
    int32_t grpc_code;                /* STREAM_ENDED: the gRPC status code (0 = OK) */
    char text[256];                   /* STATUS: degraded_reason; STREAM_ENDED: the message */
} lpm_event;

/* Result of lpm_session_close. C# twin: LpmCloseInfo. */
typedef struct lpm_close_info {
    uint64_t frames;         /* frames generated over the session's life (daemon's count) */
    uint64_t dropped_chunks; /* idle chunks skipped under load */
    uint64_t events_dropped; /* events lost because the poll_event queue was full */
} lpm_close_info;

/* Geometry and state of a mapped ring. C# twin: LpmRingInfo. */
typedef struct lpm_ring_info {
    uint64_t frames_written; /* the newest frame is in slot (frames_written - 1) % slot_count */
    uint64_t heartbeat_ns;   /* writer's wall clock at its latest write (Unix ns) */
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t format;
    uint32_t slot_count;
    uint32_t writer_pid;
    int32_t closed;          /* 1 when the writer closed the ring: no more frames */
    uint32_t reserved;       /* zero */
} lpm_ring_info;

typedef void (*lpm_event_callback)(const lpm_event* event, void* user_data);

/* ---- library ------------------------------------------------------------------------------ */

/* LPM_BRIDGE_ABI_VERSION of the library actually loaded. */
LPM_BRIDGE_API uint32_t lpm_bridge_abi_version(void);
/* sizeof the public struct named `struct_name` ("lpm_frame_info", ...), 0 if unknown: bindings
 * compare it with their twin's marshalled size. */
LPM_BRIDGE_API uint32_t lpm_struct_size(const char* struct_name);
/* "LPM_OK", "LPM_ERR_NOT_FOUND", ...; "LPM_UNKNOWN_STATUS" for other values. Static string. */
LPM_BRIDGE_API const char* lpm_status_name(int32_t status);
/* The message of this thread's last failed call ("" if none). */
LPM_BRIDGE_API const char* lpm_last_error(void);

/* ---- client ------------------------------------------------------------------------------- */

/* Connects to the daemon at `address` ("host:port", or "unix:/path") and waits until the channel
 * is ready. `token` (NULL or "" = none) is sent as `authorization: Bearer <token>`. `timeout_ms`
 * (0 = 30000) bounds the connection and every later unary call of this client.
 * LPM_ERR_UNAVAILABLE if the daemon is not reachable within it. */
LPM_BRIDGE_API lpm_status lpm_connect(const char* address, const char* token, uint32_t timeout_ms,
                                      lpm_client** out_client);
/* Fills the defaults of lpm_connect_options (all zero: no token, 30 s, plaintext); NULL is a
 * no-op. Call it first, then set the fields you need: fields added in later versions keep their
 * defaults. */
LPM_BRIDGE_API void lpm_connect_options_init(lpm_connect_options* options);
/* lpm_connect with the options above, TLS and mutual TLS included. `options` NULL = the defaults
 * (the same as lpm_connect(address, NULL, 0, ...)). The options and the files they name are read
 * during the call; nothing is kept but the certificates' contents. Any thread.
 * Errors, checked in this order before any network traffic (nothing is created on failure):
 *  - LPM_ERR_INVALID_ARGUMENT: address or out_client NULL; both *_file and *_pem set for one
 *    piece; a client certificate without its key or a key without its certificate; material that
 *    is not PEM of the expected kind (no "-----BEGIN CERTIFICATE-----" in a CA or certificate, no
 *    "PRIVATE KEY" block in a key, an encrypted key, a block without its END line or with bad
 *    base64). The message names the field and the file.
 *  - LPM_ERR_IO: a *_file that does not exist or cannot be read (the message names the field,
 *    the path and the reason).
 *  - LPM_ERR_UNAVAILABLE: no ready channel within timeout_ms, which over TLS includes the
 *    handshake failures: a plaintext daemon, a daemon certificate the trusted CA did not sign
 *    or whose names do not match the host (or tls_server_name), and a daemon that requires a
 *    client certificate (--tls-client-ca) when none or an untrusted one was given. The message
 *    says TLS was used and adds gRPC's last connection error when it has one. */
LPM_BRIDGE_API lpm_status lpm_connect_with_options(const char* address,
                                                   const lpm_connect_options* options,
                                                   lpm_client** out_client);
LPM_BRIDGE_API void lpm_client_destroy(lpm_client* client);
/* A round trip (ListCharacters) that also checks the token; the number of stored character
 * versions goes to *out_character_count (may be NULL). */
LPM_BRIDGE_API lpm_status lpm_client_ping(lpm_client* client, uint32_t* out_character_count);
/* Registers a sheet directory (sheet.toml and the image files beside it; docs/sheet-format.md)
 * in the manifest form. `character_id` NULL or "" derives the id from the manifest's name.
 * Idempotent: the same images give the same version (created = 0 the second time). */
LPM_BRIDGE_API lpm_status lpm_register_character_dir(lpm_client* client, const char* sheet_dir,
                                                     const char* character_id,
                                                     lpm_character_info* out_info);

/* ---- session ------------------------------------------------------------------------------ */

LPM_BRIDGE_API void lpm_session_options_init(lpm_session_options* options);
/* OpenSession, map the ring (SHM), attach the Converse stream and wait for its header. The
 * session's clock starts here: with no audio it still gets idle frames in real time. */
LPM_BRIDGE_API lpm_status lpm_session_open(lpm_client* client, const lpm_session_options* options,
                                           lpm_session** out_session);
LPM_BRIDGE_API lpm_status lpm_session_get_info(lpm_session* session, lpm_session_info* out_info);
/* Queues `count` PCM16 samples (16 kHz mono) of `track`. `sample_position` < 0 places them right
 * after the previous audio of the track (or at the next chunk to generate when its buffer is
 * empty); >= 0 places the first sample there on the session clock (going back before the end of
 * the previous audio ends the stream with INVALID_ARGUMENT). More than
 * LPM_MAX_SAMPLES_PER_CHUNK samples are sent as several chunks. */
LPM_BRIDGE_API lpm_status lpm_session_push_audio(lpm_session* session, int32_t track,
                                                 const int16_t* pcm, size_t count,
                                                 int64_t sample_position);
/* The same with float samples in [-1, 1]; NaN or Inf is LPM_ERR_INVALID_ARGUMENT (nothing sent). */
LPM_BRIDGE_API lpm_status lpm_session_push_audio_f32(lpm_session* session, int32_t track,
                                                     const float* samples, size_t count,
                                                     int64_t sample_position);
/* The current utterance on `track` is complete; the next audio starts a new segment. */
LPM_BRIDGE_API lpm_status lpm_session_segment_end(lpm_session* session, int32_t track);
/* Barge-in: the daemon drops the SPEAK audio not yet generated and always answers with a
 * PLAYBACK_FINISHED event with interrupted = 1 (segment 0 if nothing was playing). */
LPM_BRIDGE_API lpm_status lpm_session_interrupt(lpm_session* session);
/* Changes the prompt from the next chunk on (at most 512 characters). */
LPM_BRIDGE_API lpm_status lpm_session_set_prompt(lpm_session* session, const char* prompt);

/* In-order reading: copies the oldest frame still available whose seq >= min_seq (pass the last
 * seq + 1; 0 at first). Frames the ring has already overwritten are skipped, so seq may jump.
 * LPM_NO_DATA if there is none yet; LPM_ERR_CLOSED once the stream has ended and every frame
 * received was read. `dst` may be NULL (see Ownership); `dst_bytes` is its size. */
LPM_BRIDGE_API lpm_status lpm_session_next_frame(lpm_session* session, uint64_t min_seq,
                                                 uint8_t* dst, size_t dst_bytes,
                                                 lpm_frame_info* out_frame);
/* Presentation: copies the frame to show now. The session keeps a presentation clock that plays
 * frames at 24 fps in pts order from the first frame; when generation is late it holds the
 * newest frame (and resumes from it), and when it falls further behind than the frames kept it
 * jumps to the oldest one kept. LPM_NO_DATA when the frame to show has not changed since the
 * last poll_frame (the previous copy is still the right one). Call it once per rendered frame. */
LPM_BRIDGE_API lpm_status lpm_session_poll_frame(lpm_session* session, uint8_t* dst,
                                                 size_t dst_bytes, lpm_frame_info* out_frame);
/* Events go to `callback` (on the session's reader thread) when one is set, otherwise into a
 * queue of up to 1024 events (the oldest are dropped beyond it) read with poll_event. NULL
 * returns to the queue. When this returns, the previous callback is not running and will not be
 * called again, so its user_data may be freed (called from inside the callback, it only swaps). */
LPM_BRIDGE_API lpm_status lpm_session_set_event_callback(lpm_session* session,
                                                         lpm_event_callback callback,
                                                         void* user_data);
/* Pops the oldest queued event into *out_event; LPM_NO_DATA when the queue is empty. */
LPM_BRIDGE_API lpm_status lpm_session_poll_event(lpm_session* session, lpm_event* out_event);
/* CloseSession, end the stream, join the session's threads, unmap the ring, free the handle.
 * The handle is freed whatever the status (e.g. LPM_ERR_UNAVAILABLE when the daemon is gone).
 * `out_info` may be NULL. */
LPM_BRIDGE_API lpm_status lpm_session_close(lpm_session* session, lpm_close_info* out_info);

/* ---- ring reader (also used by the session for SHM delivery) ------------------------------ */

/* Maps a ring read-only: a POSIX shared-memory name ("lpmnpc-<id>") or a file path (one with a
 * '/' or '\\'). Checks magic, version 1, RGBA8 and the geometry (docs/shm-ring.md). */
LPM_BRIDGE_API lpm_status lpm_ring_open(const char* name_or_path, lpm_ring** out_ring);
LPM_BRIDGE_API void lpm_ring_close(lpm_ring* ring);
LPM_BRIDGE_API lpm_status lpm_ring_get_info(lpm_ring* ring, lpm_ring_info* out_info);
/* A seqlock-consistent copy of `slot` into `dst` (required here); out_frame->seq is the slot's
 * frame seq: compare it with the Frame event's seq. LPM_ERR_RING_BUSY if the slot kept changing.
 * Thread-safe (the mapping is read-only). */
LPM_BRIDGE_API lpm_status lpm_ring_read_slot(lpm_ring* ring, uint32_t slot, uint8_t* dst,
                                             size_t dst_bytes, lpm_frame_info* out_frame);
/* The newest frame (slot (frames_written - 1) % slot_count); LPM_NO_DATA if none was written. */
LPM_BRIDGE_API lpm_status lpm_ring_read_latest(lpm_ring* ring, uint8_t* dst, size_t dst_bytes,
                                               lpm_frame_info* out_frame);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LPM_BRIDGE_H */
