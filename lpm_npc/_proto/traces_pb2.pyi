from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TraceInfo(_message.Message):
    __slots__ = ("trace_id", "character", "size_bytes", "created_unix_ns", "complete")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    character: str
    size_bytes: int
    created_unix_ns: int
    complete: bool
    def __init__(self, trace_id: _Optional[str] = ..., character: _Optional[str] = ..., size_bytes: _Optional[int] = ..., created_unix_ns: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class ListTracesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTracesResponse(_message.Message):
    __slots__ = ("traces",)
    TRACES_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[TraceInfo]
    def __init__(self, traces: _Optional[_Iterable[_Union[TraceInfo, _Mapping]]] = ...) -> None: ...

class GetTraceRequest(_message.Message):
    __slots__ = ("trace_id",)
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    def __init__(self, trace_id: _Optional[str] = ...) -> None: ...

class TraceBytes(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ReplayTraceRequest(_message.Message):
    __slots__ = ("trace_id", "include_pixels")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    include_pixels: bool
    def __init__(self, trace_id: _Optional[str] = ..., include_pixels: _Optional[bool] = ...) -> None: ...

class ReplayedFrame(_message.Message):
    __slots__ = ("seq", "matches", "sha256", "pixels", "width", "height")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    matches: bool
    sha256: bytes
    pixels: bytes
    width: int
    height: int
    def __init__(self, seq: _Optional[int] = ..., matches: _Optional[bool] = ..., sha256: _Optional[bytes] = ..., pixels: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ReplaySummary(_message.Message):
    __slots__ = ("frames", "mismatches", "first_mismatch")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    FIRST_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    frames: int
    mismatches: int
    first_mismatch: int
    def __init__(self, frames: _Optional[int] = ..., mismatches: _Optional[int] = ..., first_mismatch: _Optional[int] = ...) -> None: ...

class ReplayEvent(_message.Message):
    __slots__ = ("frame", "summary")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame: ReplayedFrame
    summary: ReplaySummary
    def __init__(self, frame: _Optional[_Union[ReplayedFrame, _Mapping]] = ..., summary: _Optional[_Union[ReplaySummary, _Mapping]] = ...) -> None: ...
