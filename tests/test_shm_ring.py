"""The shared-memory frame ring: layout, seqlock, permissions, and the documented offsets."""

import os
import stat
import struct
import uuid

import numpy as np
import pytest

from lpm_npc.serve import shm_ring
from lpm_npc.serve.shm_ring import FrameRingReader, FrameRingWriter, RingError


@pytest.fixture
def name() -> str:
    return f"lpmnpc-test-{uuid.uuid4().hex}"


def _image(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_write_then_read_round_trip(name: str) -> None:
    writer = FrameRingWriter(name, width=24, height=16, slot_count=3)
    try:
        reader = FrameRingReader(name)
        assert reader.frames_written == 0 and reader.read_latest() is None
        image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        slot = writer.write(frame_seq=7, pts_samples=4662, image=image)
        frame = reader.read_slot(slot)
        assert frame is not None and frame.frame_seq == 7 and frame.pts_samples == 4662
        np.testing.assert_array_equal(frame.rgba[..., :3], image)
        assert (frame.rgba[..., 3] == 255).all()
        assert reader.read_latest().frame_seq == 7
        # round robin: slots wrap
        slots = [writer.write(i, i * 666, _image(16, 24, i)) for i in range(8, 12)]
        assert slots == [1, 2, 0, 1]
        assert reader.frames_written == 5
        assert reader.read_slot(0).frame_seq == 10
        reader.close()
    finally:
        writer.close()
    assert not shm_ring.ring_path(name).exists()


def test_segment_is_private_and_exclusive(name: str) -> None:
    writer = FrameRingWriter(name, 8, 8, 2)
    try:
        mode = stat.S_IMODE(os.stat(writer.path).st_mode)
        assert mode == 0o600
        with pytest.raises(FileExistsError):
            FrameRingWriter(name, 8, 8, 2)
    finally:
        writer.close()


def test_header_bytes_match_the_documented_layout(name: str) -> None:
    writer = FrameRingWriter(name, width=10, height=6, slot_count=4)
    try:
        raw = writer.path.read_bytes()
        assert raw[0:8] == b"LPMRING\0"
        version, header_size, width, height, stride, fmt, slots, slot_header = struct.unpack_from(
            "<8I", raw, 8
        )
        assert (version, header_size, width, height, stride, fmt, slots, slot_header) == (
            1,
            128,
            10,
            6,
            40,
            1,
            4,
            64,
        )
        (slot_stride,) = struct.unpack_from("<Q", raw, 40)
        assert slot_stride % 64 == 0 and slot_stride >= 64 + 6 * 40
        (pid,) = struct.unpack_from("<I", raw, 56)
        assert pid == os.getpid()
        writer.write(3, 1998, _image(6, 10, 9))
        raw = writer.path.read_bytes()
        assert struct.unpack_from("<Q", raw, 64)[0] == 1  # frames_written
        assert struct.unpack_from("<Q", raw, 48)[0] > 0  # heartbeat
        seq, frame_seq, pts = struct.unpack_from("<QQq", raw, 128)
        assert (seq, frame_seq, pts) == (2, 3, 1998)  # seqlock even after one write
        assert struct.unpack_from("<II", raw, 128 + 32) == (10, 6)
        assert raw[128 + 64 : 128 + 68] == bytes([9, 9, 9, 255])
        assert len(raw) == 128 + 4 * slot_stride
    finally:
        writer.close()


def test_a_write_in_progress_reads_odd_never_zero_and_the_reader_refuses_it(
    name: str, monkeypatch
) -> None:
    writer = FrameRingWriter(name, 8, 8, 2)
    reader = FrameRingReader(name)
    seen: list[tuple[int, object]] = []
    real_meta = shm_ring._SLOT_META

    class Observed:
        """The slot metadata store, with a reader looking at the slot right before it."""

        size = real_meta.size

        def pack_into(self, buffer, offset, *values) -> None:
            base = offset - 8
            seen.append((struct.unpack_from("<Q", buffer, base)[0], reader.read_slot(0, 3)))
            real_meta.pack_into(buffer, offset, *values)

    try:
        monkeypatch.setattr(shm_ring, "_SLOT_META", Observed())
        writer.write(0, 0, _image(8, 8, 1))  # slot 0, first write
        writer.write(1, 666, _image(8, 8, 2))  # slot 1
        writer.write(2, 1332, _image(8, 8, 3))  # slot 0 again
        assert [sequence for sequence, _ in seen] == [1, 1, 3]  # odd, never 0, mid-write
        assert seen[0][1] is None and seen[2][1] is None  # the reader refuses a slot in progress
        frame = reader.read_slot(0)
        assert frame.frame_seq == 2 and (frame.rgba[..., :3] == 3).all()
    finally:
        reader.close()
        writer.close()


def test_a_write_during_the_copy_makes_the_reader_retry_and_return_a_whole_frame(
    name: str, monkeypatch
) -> None:
    writer = FrameRingWriter(name, 8, 8, 2)
    reader = FrameRingReader(name)
    writer.write(0, 0, _image(8, 8, 10))  # slot 0
    writer.write(1, 666, _image(8, 8, 11))  # slot 1
    real_frombuffer = np.frombuffer
    copies = []

    def frombuffer_with_a_write_in_between(buffer, *args, **kwargs):
        copied = real_frombuffer(buffer, *args, **kwargs)
        if not copies:  # the first copy: the writer overwrites slot 0 before the re-check
            writer.write(2, 1332, _image(8, 8, 12))
        copies.append(1)
        return copied

    try:
        monkeypatch.setattr(shm_ring.np, "frombuffer", frombuffer_with_a_write_in_between)
        frame = reader.read_slot(0)
        monkeypatch.undo()
        assert len(copies) == 2  # the first copy failed its seqlock check
        assert frame.frame_seq == 2 and (frame.rgba[..., :3] == 12).all()
    finally:
        monkeypatch.undo()
        reader.close()
        writer.close()


def test_closed_flag_and_bad_inputs(name: str, tmp_path) -> None:
    writer = FrameRingWriter(name, 8, 8, 2)
    reader = FrameRingReader(name)
    assert not reader.closed
    with pytest.raises(RingError, match="image must be uint8"):
        writer.write(0, 0, np.zeros((4, 4, 3), np.uint8))
    writer.close(unlink=False)
    assert reader.closed
    reader.close()
    shm_ring.ring_path(name).unlink()
    with pytest.raises(RingError, match="ring name"):
        FrameRingWriter("../escape", 8, 8, 2)
    with pytest.raises(RingError, match="slot_count"):
        FrameRingWriter(name, 8, 8, 1)
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"NOTARING" + bytes(200))
    with pytest.raises(RingError, match="bad magic"):
        FrameRingReader(bogus)


def test_a_stalled_reader_never_blocks_the_writer_and_sees_overwritten_frames(name: str) -> None:
    writer = FrameRingWriter(name, 8, 8, 4)
    stalled = FrameRingReader(name)  # maps the ring, then never reads while the writer runs
    try:
        slots = [writer.write(i, i * 666, _image(8, 8, i % 256)) for i in range(100)]
        assert writer.frames_written == 100 and stalled.frames_written == 100
        assert slots[-4:] == [0, 1, 2, 3]
        # The frame a Frame event named long ago (seq 1, slot 1) was overwritten: the reader
        # notices by frame_seq, as docs/shm-ring.md tells readers to check.
        late = stalled.read_slot(1)
        assert late.frame_seq == 97 and late.frame_seq != 1
        assert stalled.read_latest().frame_seq == 99
    finally:
        stalled.close()
        writer.close()


def test_rings_of_a_dead_writer_are_removed_and_live_ones_kept(name: str) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)  # that process has exited: no writer has this pid now
    orphan = FrameRingWriter(f"{name}-orphan", 8, 8, 2)
    live = FrameRingWriter(f"{name}-live", 8, 8, 2)
    try:
        with open(orphan.path, "r+b") as handle:  # as if a killed daemon had written it
            handle.seek(56)
            handle.write(struct.pack("<I", dead_pid))
        not_a_ring = shm_ring.shm_dir() / f"{name}-junk"
        not_a_ring.write_bytes(b"junk")
        removed = shm_ring.remove_orphan_rings(name)
        assert removed == [orphan.path]
        assert live.path.exists() and not_a_ring.exists()
        not_a_ring.unlink()
    finally:
        orphan.close()
        live.close()
