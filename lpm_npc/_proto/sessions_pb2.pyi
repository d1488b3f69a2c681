from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Delivery(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_UNSPECIFIED: _ClassVar[Delivery]
    DELIVERY_INLINE: _ClassVar[Delivery]
    DELIVERY_SHM: _ClassVar[Delivery]

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA8: _ClassVar[PixelFormat]

class IdlePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDLE_POLICY_UNSPECIFIED: _ClassVar[IdlePolicy]
    IDLE_POLICY_ANIMATE: _ClassVar[IdlePolicy]
    IDLE_POLICY_ANIMATE_PRIORITY: _ClassVar[IdlePolicy]

class Track(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACK_UNSPECIFIED: _ClassVar[Track]
    TRACK_SPEAK: _ClassVar[Track]
    TRACK_LISTEN: _ClassVar[Track]

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM16: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_FLOAT32: _ClassVar[AudioEncoding]

class ServingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATE_UNSPECIFIED: _ClassVar[ServingState]
    SERVING_STATE_SERVING: _ClassVar[ServingState]
    SERVING_STATE_DEGRADED: _ClassVar[ServingState]
    SERVING_STATE_DRAINING: _ClassVar[ServingState]
DELIVERY_UNSPECIFIED: Delivery
DELIVERY_INLINE: Delivery
DELIVERY_SHM: Delivery
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_RGBA8: PixelFormat
IDLE_POLICY_UNSPECIFIED: IdlePolicy
IDLE_POLICY_ANIMATE: IdlePolicy
IDLE_POLICY_ANIMATE_PRIORITY: IdlePolicy
TRACK_UNSPECIFIED: Track
TRACK_SPEAK: Track
TRACK_LISTEN: Track
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_PCM16: AudioEncoding
AUDIO_ENCODING_FLOAT32: AudioEncoding
SERVING_STATE_UNSPECIFIED: ServingState
SERVING_STATE_SERVING: ServingState
SERVING_STATE_DEGRADED: ServingState
SERVING_STATE_DRAINING: ServingState

class OpenSessionRequest(_message.Message):
    __slots__ = ("character", "width", "height", "fps", "delivery", "seed", "prompt", "idle_policy", "shm_slots", "inline_format", "record_trace")
    CHARACTER_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IDLE_POLICY_FIELD_NUMBER: _ClassVar[int]
    SHM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    INLINE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    RECORD_TRACE_FIELD_NUMBER: _ClassVar[int]
    character: str
    width: int
    height: int
    fps: int
    delivery: Delivery
    seed: int
    prompt: str
    idle_policy: IdlePolicy
    shm_slots: int
    inline_format: PixelFormat
    record_trace: bool
    def __init__(self, character: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[int] = ..., delivery: _Optional[_Union[Delivery, str]] = ..., seed: _Optional[int] = ..., prompt: _Optional[str] = ..., idle_policy: _Optional[_Union[IdlePolicy, str]] = ..., shm_slots: _Optional[int] = ..., inline_format: _Optional[_Union[PixelFormat, str]] = ..., record_trace: _Optional[bool] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "character_version", "width", "height", "fps", "frames_per_chunk", "samples_per_chunk", "delivery", "shm_name", "shm_path", "shm_slots", "trace_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    SHM_PATH_FIELD_NUMBER: _ClassVar[int]
    SHM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    character_version: str
    width: int
    height: int
    fps: int
    frames_per_chunk: int
    samples_per_chunk: int
    delivery: Delivery
    shm_name: str
    shm_path: str
    shm_slots: int
    trace_id: str
    def __init__(self, session_id: _Optional[str] = ..., character_version: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[int] = ..., frames_per_chunk: _Optional[int] = ..., samples_per_chunk: _Optional[int] = ..., delivery: _Optional[_Union[Delivery, str]] = ..., shm_name: _Optional[str] = ..., shm_path: _Optional[str] = ..., shm_slots: _Optional[int] = ..., trace_id: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("frames", "dropped_chunks")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    dropped_chunks: int
    def __init__(self, frames: _Optional[int] = ..., dropped_chunks: _Optional[int] = ...) -> None: ...

class ConverseHeader(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("track", "sample_position", "pcm", "encoding")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    track: Track
    sample_position: int
    pcm: bytes
    encoding: AudioEncoding
    def __init__(self, track: _Optional[_Union[Track, str]] = ..., sample_position: _Optional[int] = ..., pcm: _Optional[bytes] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ...) -> None: ...

class SegmentEnd(_message.Message):
    __slots__ = ("track",)
    TRACK_FIELD_NUMBER: _ClassVar[int]
    track: Track
    def __init__(self, track: _Optional[_Union[Track, str]] = ...) -> None: ...

class Interrupt(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPrompt(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ClientEvent(_message.Message):
    __slots__ = ("header", "audio", "segment_end", "interrupt", "set_prompt")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_END_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_FIELD_NUMBER: _ClassVar[int]
    SET_PROMPT_FIELD_NUMBER: _ClassVar[int]
    header: ConverseHeader
    audio: AudioChunk
    segment_end: SegmentEnd
    interrupt: Interrupt
    set_prompt: SetPrompt
    def __init__(self, header: _Optional[_Union[ConverseHeader, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., segment_end: _Optional[_Union[SegmentEnd, _Mapping]] = ..., interrupt: _Optional[_Union[Interrupt, _Mapping]] = ..., set_prompt: _Optional[_Union[SetPrompt, _Mapping]] = ...) -> None: ...

class ConverseStarted(_message.Message):
    __slots__ = ("session_id", "clock_origin_unix_ns", "next_sample", "width", "height", "fps", "frames_per_chunk", "samples_per_chunk", "delivery", "shm_name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLOCK_ORIGIN_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    NEXT_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    clock_origin_unix_ns: int
    next_sample: int
    width: int
    height: int
    fps: int
    frames_per_chunk: int
    samples_per_chunk: int
    delivery: Delivery
    shm_name: str
    def __init__(self, session_id: _Optional[str] = ..., clock_origin_unix_ns: _Optional[int] = ..., next_sample: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[int] = ..., frames_per_chunk: _Optional[int] = ..., samples_per_chunk: _Optional[int] = ..., delivery: _Optional[_Union[Delivery, str]] = ..., shm_name: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("seq", "chunk_index", "pts_samples", "pts_ms", "input_ready_unix_ns", "step_started_unix_ns", "step_finished_unix_ns", "generated_at_unix_ns", "width", "height", "format", "speaking", "idle", "data", "shm_slot")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    PTS_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PTS_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_READY_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STEP_FINISHED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_SLOT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    chunk_index: int
    pts_samples: int
    pts_ms: float
    input_ready_unix_ns: int
    step_started_unix_ns: int
    step_finished_unix_ns: int
    generated_at_unix_ns: int
    width: int
    height: int
    format: PixelFormat
    speaking: bool
    idle: bool
    data: bytes
    shm_slot: int
    def __init__(self, seq: _Optional[int] = ..., chunk_index: _Optional[int] = ..., pts_samples: _Optional[int] = ..., pts_ms: _Optional[float] = ..., input_ready_unix_ns: _Optional[int] = ..., step_started_unix_ns: _Optional[int] = ..., step_finished_unix_ns: _Optional[int] = ..., generated_at_unix_ns: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., speaking: _Optional[bool] = ..., idle: _Optional[bool] = ..., data: _Optional[bytes] = ..., shm_slot: _Optional[int] = ...) -> None: ...

class PlaybackStarted(_message.Message):
    __slots__ = ("segment", "pts_samples", "pts_ms")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    PTS_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PTS_MS_FIELD_NUMBER: _ClassVar[int]
    segment: int
    pts_samples: int
    pts_ms: float
    def __init__(self, segment: _Optional[int] = ..., pts_samples: _Optional[int] = ..., pts_ms: _Optional[float] = ...) -> None: ...

class PlaybackFinished(_message.Message):
    __slots__ = ("segment", "pts_samples", "pts_ms", "interrupted")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    PTS_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PTS_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    segment: int
    pts_samples: int
    pts_ms: float
    interrupted: bool
    def __init__(self, segment: _Optional[int] = ..., pts_samples: _Optional[int] = ..., pts_ms: _Optional[float] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("rtf", "queue_depth", "sessions", "degraded", "degraded_reason", "dropped_chunks", "late_samples", "speak_buffered_samples", "listen_buffered_samples", "draining")
    RTF_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    LATE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SPEAK_BUFFERED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LISTEN_BUFFERED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    rtf: float
    queue_depth: int
    sessions: int
    degraded: bool
    degraded_reason: str
    dropped_chunks: int
    late_samples: int
    speak_buffered_samples: int
    listen_buffered_samples: int
    draining: bool
    def __init__(self, rtf: _Optional[float] = ..., queue_depth: _Optional[int] = ..., sessions: _Optional[int] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ..., dropped_chunks: _Optional[int] = ..., late_samples: _Optional[int] = ..., speak_buffered_samples: _Optional[int] = ..., listen_buffered_samples: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

class ServerEvent(_message.Message):
    __slots__ = ("header", "frame", "playback_started", "playback_finished", "status")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_STARTED_FIELD_NUMBER: _ClassVar[int]
    PLAYBACK_FINISHED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    header: ConverseStarted
    frame: Frame
    playback_started: PlaybackStarted
    playback_finished: PlaybackFinished
    status: Status
    def __init__(self, header: _Optional[_Union[ConverseStarted, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., playback_started: _Optional[_Union[PlaybackStarted, _Mapping]] = ..., playback_finished: _Optional[_Union[PlaybackFinished, _Mapping]] = ..., status: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class GetServerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BatchStepTime(_message.Message):
    __slots__ = ("sessions", "step_ms")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    sessions: int
    step_ms: float
    def __init__(self, sessions: _Optional[int] = ..., step_ms: _Optional[float] = ...) -> None: ...

class ServerStatus(_message.Message):
    __slots__ = ("state", "degraded_reason", "capacity_sessions", "capacity_source", "session_limit", "max_sessions", "open_sessions", "active_sessions", "attached_sessions", "detached_sessions", "model", "checkpoint_sha256", "step_times", "chunk_ms", "headroom", "version", "uptime_s", "rtf")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    OPEN_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    DETACHED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    RTF_FIELD_NUMBER: _ClassVar[int]
    state: ServingState
    degraded_reason: str
    capacity_sessions: int
    capacity_source: str
    session_limit: int
    max_sessions: int
    open_sessions: int
    active_sessions: int
    attached_sessions: int
    detached_sessions: int
    model: str
    checkpoint_sha256: str
    step_times: _containers.RepeatedCompositeFieldContainer[BatchStepTime]
    chunk_ms: float
    headroom: float
    version: str
    uptime_s: float
    rtf: float
    def __init__(self, state: _Optional[_Union[ServingState, str]] = ..., degraded_reason: _Optional[str] = ..., capacity_sessions: _Optional[int] = ..., capacity_source: _Optional[str] = ..., session_limit: _Optional[int] = ..., max_sessions: _Optional[int] = ..., open_sessions: _Optional[int] = ..., active_sessions: _Optional[int] = ..., attached_sessions: _Optional[int] = ..., detached_sessions: _Optional[int] = ..., model: _Optional[str] = ..., checkpoint_sha256: _Optional[str] = ..., step_times: _Optional[_Iterable[_Union[BatchStepTime, _Mapping]]] = ..., chunk_ms: _Optional[float] = ..., headroom: _Optional[float] = ..., version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., rtf: _Optional[float] = ...) -> None: ...
