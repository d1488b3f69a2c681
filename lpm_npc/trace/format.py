"""The trace file format (specified byte by byte in docs/trace-format.md).

A trace file is the 8-byte magic `MAGIC` followed by a stream of msgpack maps, one per record,
each with a string key `"t"` naming its kind:

- `"header"` (exactly one, first): format version, model, character (with its reference images, so
  replay needs nothing but the trace and a checkpoint), session config, seed, platform, versions.
- `"chunk"`: one generated chunk as the generator consumed it: clock position, both tracks' PCM
  (float32 little-endian bytes), samples received vs padded, the prompt change applied before it,
  the batch it was generated in (size, row, each row's reference count), wall-clock stamps.
- `"frame"`: seq, pts, sha256 of the frame's pixels (uint8 (H, W, 3) C order), optional thumbnail.
- `"shed"`: a chunk skipped under load (no frames; its seq and pts are a gap).
- `"event"`: a client event the daemon applied (interrupt, segment_end, set_prompt), with its time.
- `"end"`: the session's end (counts); a trace cut short by a crash has none.

Readers refuse an unknown major version (`TraceFormatError` naming the version) and read a trace
cut short up to its last whole record (`Trace.truncated` is then True). Writers flush each record,
so a crash loses at most the record being written.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import numpy as np

MAGIC = b"LPMTRC\r\n"  # the \r\n catches text-mode mangling, like PNG's signature
FORMAT_VERSION = (1, 0)  # (major, minor): a reader refuses another major; minors only add keys
RECORD_KINDS = ("header", "chunk", "frame", "shed", "event", "end")


class TraceFormatError(ValueError):
    """The file is not a trace this reader understands (names what is wrong)."""


def frame_digest(frame: np.ndarray) -> bytes:
    """sha256 of a frame's pixels: uint8 (H, W, 3), C order, no header."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame: expected uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes()).digest()


def pcm_bytes(pcm: np.ndarray) -> bytes:
    """float32 mono PCM -> little-endian bytes (the trace's audio encoding)."""
    return np.asarray(pcm, dtype="<f4").tobytes()


def pcm_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of `pcm_bytes`: a writable native float32 array."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def png_image(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@dataclass
class Trace:
    """A trace read into memory: the header map and the records after it, in file order."""

    header: dict[str, Any]
    chunks: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    sheds: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    truncated: bool = False  # the file ended inside a record (or without an "end" record)

    @property
    def version(self) -> tuple[int, int]:
        major, minor = self.header["format_version"]
        return int(major), int(minor)


class TraceWriter:
    """Appends records to a trace file; the header is written on construction.

    `write(record)` takes a map with `"t"` in `RECORD_KINDS` (never "header") and flushes it.
    Not thread-safe: one writer per session, called from one thread.
    """

    def __init__(self, path: str | Path | BinaryIO, header: dict[str, Any]) -> None:
        if isinstance(path, (str, Path)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        else:
            self._file = path
        self._packer = msgpack.Packer(use_bin_type=True)
        self._file.write(MAGIC)
        self._put({"t": "header", "format_version": list(FORMAT_VERSION), **header})
        self.closed = False

    def _put(self, record: dict[str, Any]) -> None:
        self._file.write(self._packer.pack(record))
        self._file.flush()

    def write(self, record: dict[str, Any]) -> None:
        if self.closed:
            raise ValueError("trace writer is closed")
        kind = record.get("t")
        if kind not in RECORD_KINDS or kind == "header":
            raise ValueError(f"record t={kind!r}; allowed {RECORD_KINDS[1:]}")
        self._put(record)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()


def read_trace(source: str | Path | bytes) -> Trace:
    """Read a trace file (or its bytes). Raises `TraceFormatError` for a file that is not a trace
    or has an unknown major version; a file cut short reads up to its last whole record."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if not data.startswith(MAGIC):
        raise TraceFormatError(f"not an lpm-npc trace: the file must start with {MAGIC!r}")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data[len(MAGIC) :])
    records: list[dict[str, Any]] = []
    truncated = False
    try:
        for record in unpacker:
            if not isinstance(record, dict) or record.get("t") not in RECORD_KINDS:
                raise TraceFormatError(f"record {len(records)}: not a trace record")
            records.append(record)
    except (msgpack.OutOfData, ValueError) as error:
        if isinstance(error, TraceFormatError):
            raise
        truncated = True
    # msgpack's iterator stops silently at a partial object; detect leftover bytes
    if unpacker.tell() != len(data) - len(MAGIC):
        truncated = True
    if not records or records[0]["t"] != "header":
        raise TraceFormatError("trace: the first record must be the header")
    header = records[0]
    version = header.get("format_version")
    if not isinstance(version, list) or len(version) != 2:
        raise TraceFormatError(f"header.format_version: expected [major, minor], got {version!r}")
    if version[0] != FORMAT_VERSION[0]:
        raise TraceFormatError(
            f"header.format_version: major version {version[0]} is not supported "
            f"(this reader reads {FORMAT_VERSION[0]}.x)"
        )
    trace = Trace(header=header)
    lists = {
        "chunk": trace.chunks,
        "frame": trace.frames,
        "shed": trace.sheds,
        "event": trace.events,
    }
    for record in records[1:]:
        kind = record["t"]
        if kind == "header":
            raise TraceFormatError("trace: a second header record")
        if kind == "end":
            trace.end = record
        else:
            lists[kind].append(record)
    trace.truncated = truncated or trace.end is None
    return trace
