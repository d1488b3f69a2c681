"""The shared-memory frame ring: one writer (the daemon), any number of readers (engine bridges).

Layout (all integers little-endian; byte by byte in docs/shm-ring.md, which native readers
implement):

    header  (128 bytes)  magic "LPMRING\\0", version, geometry, format, slot count, slot stride,
                         writer heartbeat, writer pid, flags, frames written
    slot i  (at header_size + i * slot_stride) : 64-byte slot header (seqlock sequence, frame seq,
                         pts, generation time, size) then height * stride bytes of RGBA8 pixels

Writing slot i uses a seqlock: `sequence` becomes odd, pixels and metadata are written, then
`sequence` becomes even again, and only then is `frames_written` advanced. A reader copies the
slot and accepts the copy only if `sequence` was even and unchanged across the copy.

Every 8-byte field that changes while readers watch (`sequence`, `frames_written`, `heartbeat_ns`)
is 8-byte aligned and stored with one aligned 8-byte store through a numpy uint64 view of the map
(not `struct.pack_into`, which copies byte by byte, so a reader could see a mix of old and new
bytes, or a sequence of 0 in the middle of a write). The slot's other metadata is packed after
its sequence, never over it. A slot's sequence is 0 until its first write begins: readers treat
0 as "no frame in this slot".

The segment is a file in /dev/shm (the POSIX shared-memory directory: `shm_open(name)` opens the
same object) created with mode 0600 and O_EXCL, so only the daemon's user can map it and a stale
name is never reused silently. Python's multiprocessing.shared_memory is not used because its
resource tracker unlinks segments when a *reader* process exits.

This module does not know about sessions or gRPC; the serving layer owns one ring per SHM session.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"LPMRING\0"
VERSION = 1
HEADER_SIZE = 128
SLOT_HEADER_SIZE = 64
FORMAT_RGBA8 = 1
FLAG_CLOSED = 1  # the writer closed the ring; no more frames will come
_ALIGN = 64  # slot starts are cache-line aligned

# header: magic 8s, version u32, header_size u32, width u32, height u32, stride u32, format u32,
# slot_count u32, slot_header_size u32, slot_stride u64, heartbeat_ns u64, writer_pid u32,
# flags u32, frames_written u64  (then zero padding to 128 bytes)
_HEADER = struct.Struct("<8sIIIIIIIIQQIIQ")
_OFF_HEARTBEAT = 48
_OFF_FLAGS = 60
_OFF_FRAMES_WRITTEN = 64
# slot header: sequence u64, frame_seq u64, pts_samples i64, generated_unix_ns u64,
# width u32, height u32  (then zero padding to 64 bytes)
_SLOT = struct.Struct("<QQqQII")
_SLOT_META = struct.Struct("<QqQII")  # the slot header after `sequence` (the writer's view)
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class RingError(ValueError):
    """A ring could not be created or opened (bad name, wrong magic or version, too small)."""


def shm_dir() -> Path:
    """Where POSIX shared memory lives on this host (/dev/shm on Linux)."""
    path = Path("/dev/shm")
    return path if path.is_dir() else Path(tempfile.gettempdir())


def ring_path(name: str) -> Path:
    if not _NAME.match(name):
        raise RingError(f"ring name must match {_NAME.pattern}, got {name!r}")
    return shm_dir() / name


@dataclass(frozen=True)
class RingGeometry:
    width: int
    height: int
    slot_count: int

    @property
    def stride(self) -> int:
        return self.width * 4

    @property
    def slot_stride(self) -> int:
        raw = SLOT_HEADER_SIZE + self.height * self.stride
        return (raw + _ALIGN - 1) // _ALIGN * _ALIGN

    @property
    def total_bytes(self) -> int:
        return HEADER_SIZE + self.slot_count * self.slot_stride


@dataclass(frozen=True)
class RingFrame:
    """A consistent copy of one slot."""

    slot: int
    frame_seq: int
    pts_samples: int
    generated_unix_ns: int
    rgba: np.ndarray  # uint8 (H, W, 4)


class FrameRingWriter:
    """Creates the ring file and writes frames into slots round-robin."""

    def __init__(self, name: str, width: int, height: int, slot_count: int) -> None:
        if not (1 <= width <= 8192 and 1 <= height <= 8192):
            raise RingError(f"ring size must be 1..8192 px per side, got {width}x{height}")
        if not 2 <= slot_count <= 1024:
            raise RingError(f"slot_count must be in [2, 1024], got {slot_count}")
        self.name = name
        self.path = ring_path(name)
        self.geometry = RingGeometry(width, height, slot_count)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask cannot widen it, but be explicit
            os.ftruncate(fd, self.geometry.total_bytes)
            self._map = mmap.mmap(fd, self.geometry.total_bytes)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)  # the mapping keeps the memory
        g = self.geometry
        _HEADER.pack_into(
            self._map,
            0,
            MAGIC,
            VERSION,
            HEADER_SIZE,
            g.width,
            g.height,
            g.stride,
            FORMAT_RGBA8,
            g.slot_count,
            SLOT_HEADER_SIZE,
            g.slot_stride,
            time.time_ns(),
            os.getpid(),
            0,
            0,
        )
        self._frames_written = 0
        self._pixels = np.frombuffer(self._map, np.uint8)
        # total_bytes is a multiple of 64 and every mutable u64 sits at a multiple of 8.
        self._words = np.frombuffer(self._map, np.dtype("<u8"))

    @property
    def frames_written(self) -> int:
        return self._frames_written

    def heartbeat(self) -> None:
        """Tell readers the writer is alive (also done by every write)."""
        self._words[_OFF_HEARTBEAT // 8] = time.time_ns()

    def write(self, frame_seq: int, pts_samples: int, image: np.ndarray) -> int:
        """Write an (H, W, 3|4) uint8 image into the next slot; return the slot index."""
        g = self.geometry
        if image.dtype != np.uint8 or image.shape[:2] != (g.height, g.width):
            raise RingError(
                f"image must be uint8 ({g.height}, {g.width}, 3|4), got {image.dtype} {image.shape}"
            )
        slot = self._frames_written % g.slot_count
        base = HEADER_SIZE + slot * g.slot_stride
        sequence_word = base // 8
        sequence = int(self._words[sequence_word])
        self._words[sequence_word] = sequence + 1  # odd: write in progress
        _SLOT_META.pack_into(
            self._map, base + 8, frame_seq, pts_samples, time.time_ns(), g.width, g.height
        )
        start = base + SLOT_HEADER_SIZE
        pixels = self._pixels[start : start + g.height * g.stride].reshape(g.height, g.width, 4)
        pixels[..., :3] = image[..., :3]
        pixels[..., 3] = image[..., 3] if image.shape[2] == 4 else 255
        self._words[sequence_word] = sequence + 2  # even: stable
        self._frames_written += 1
        self._words[_OFF_FRAMES_WRITTEN // 8] = self._frames_written
        self.heartbeat()
        return slot

    def close(self, unlink: bool = True) -> None:
        """Mark the ring closed for readers, unmap, and remove the name."""
        if self._map.closed:
            return
        flags = _U32.unpack_from(self._map, _OFF_FLAGS)[0]
        _U32.pack_into(self._map, _OFF_FLAGS, flags | FLAG_CLOSED)
        del self._pixels, self._words  # exported buffers would keep the map from closing
        self._map.close()
        if unlink:
            self.path.unlink(missing_ok=True)


def remove_orphan_rings(prefix: str) -> list[Path]:
    """Unlink rings named `prefix*` whose writer process no longer exists (a daemon killed with
    -9 cannot unlink its rings); returns what was removed. Files that are not rings are left."""
    removed = []
    for path in sorted(shm_dir().glob(f"{prefix}*")):
        try:
            with open(path, "rb") as handle:
                header = handle.read(_HEADER.size)
        except OSError:
            continue
        if len(header) < _HEADER.size or header[:8] != MAGIC:
            continue
        pid = _HEADER.unpack(header)[11]
        try:
            os.kill(pid, 0)
            continue  # alive (this process or another daemon)
        except PermissionError:
            continue  # alive, someone else's
        except ProcessLookupError:
            pass
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class FrameRingReader:
    """Maps a ring read-only and copies slots out consistently."""

    def __init__(self, name_or_path: str | Path) -> None:
        path = Path(name_or_path)
        if not path.is_absolute():
            path = ring_path(str(name_or_path))
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise RingError(
                    f"{path}: {size} bytes is smaller than the {HEADER_SIZE}-byte header"
                )
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        fields = _HEADER.unpack_from(self._map, 0)
        magic, version = fields[0], fields[1]
        if magic != MAGIC:
            raise RingError(f"{path}: bad magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise RingError(f"{path}: ring version {version}, this reader supports {VERSION}")
        _, _, _, width, height, stride, fmt, slots, _, slot_stride, _, pid, _, _ = fields
        if fmt != FORMAT_RGBA8:
            raise RingError(f"{path}: pixel format {fmt}, expected {FORMAT_RGBA8} (RGBA8)")
        self.geometry = RingGeometry(width, height, slots)
        if stride != self.geometry.stride or slot_stride != self.geometry.slot_stride:
            raise RingError(f"{path}: inconsistent stride {stride} / slot stride {slot_stride}")
        if size < self.geometry.total_bytes:
            raise RingError(f"{path}: {size} bytes, the header implies {self.geometry.total_bytes}")
        self.writer_pid = pid
        self.path = path

    @property
    def heartbeat_ns(self) -> int:
        return _U64.unpack_from(self._map, _OFF_HEARTBEAT)[0]

    @property
    def frames_written(self) -> int:
        return _U64.unpack_from(self._map, _OFF_FRAMES_WRITTEN)[0]

    @property
    def closed(self) -> bool:
        return bool(_U32.unpack_from(self._map, _OFF_FLAGS)[0] & FLAG_CLOSED)

    def read_slot(self, slot: int, retries: int = 100) -> RingFrame | None:
        """A consistent copy of `slot`, or None if the writer kept overwriting it."""
        g = self.geometry
        if not 0 <= slot < g.slot_count:
            raise RingError(f"slot must be in [0, {g.slot_count}), got {slot}")
        base = HEADER_SIZE + slot * g.slot_stride
        start = base + SLOT_HEADER_SIZE
        for _ in range(retries):
            before = _U64.unpack_from(self._map, base)[0]
            if before & 1:
                continue  # a write is in progress
            _, frame_seq, pts, generated, _, _ = _SLOT.unpack_from(self._map, base)
            rgba = np.frombuffer(self._map, np.uint8, g.height * g.stride, start).copy()
            if _U64.unpack_from(self._map, base)[0] == before:
                return RingFrame(
                    slot, frame_seq, pts, generated, rgba.reshape(g.height, g.width, 4)
                )
        return None

    def read_latest(self) -> RingFrame | None:
        written = self.frames_written
        if written == 0:
            return None
        return self.read_slot((written - 1) % self.geometry.slot_count)

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()
