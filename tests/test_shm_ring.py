"""The shared-memory frame ring: layout, seqlock, permissions, and the documented offsets."""

import os
import stat
import struct
import threading
import time
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


def test_reader_never_sees_a_torn_frame(name: str) -> None:
    writer = FrameRingWriter(name, 64, 64, 2)
    reader = FrameRingReader(name)
    stop = threading.Event()

    def write_loop() -> None:
        i = 0
        while not stop.is_set():
            writer.write(i, i, _image(64, 64, i % 256))
            i += 1
            time.sleep(0.0001)  # like a real writer, leave gaps between frames

    thread = threading.Thread(target=write_loop)
    thread.start()

    def check(frame) -> None:
        values = np.unique(frame.rgba[..., :3])
        assert len(values) == 1, "torn frame: pixels from two writes"
        if frame.frame_seq:
            assert values[0] == frame.frame_seq % 256

    try:
        # While the writer races, a read either fails its seqlock check (None) or is whole. How
        # many reads succeed depends on thread timing on a loaded machine, so it is not asserted.
        for _ in range(300):
            frame = reader.read_slot(0)
            if frame is not None:
                check(frame)
        stop.set()
        thread.join()
        # Once the writer is quiet the slot always reads, and reads whole.
        frame = reader.read_slot(0)
        assert frame is not None
        check(frame)
    finally:
        stop.set()
        thread.join()
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
