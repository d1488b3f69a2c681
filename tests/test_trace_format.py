"""Trace file format: round trip, unknown major version refused, a cut-short trace reads."""

import io

import msgpack
import numpy as np
import pytest

from lpm_npc.trace.format import (
    MAGIC,
    TraceFormatError,
    TraceWriter,
    frame_digest,
    pcm_bytes,
    pcm_from_bytes,
    read_trace,
)


def _write(path, n_frames=3):
    writer = TraceWriter(path, {"model": {"name": "x"}})
    writer.write({"t": "chunk", "k": 0, "speak": pcm_bytes(np.full(4, 0.25, np.float32))})
    for seq in range(n_frames):
        writer.write({"t": "frame", "seq": seq, "pts": seq * 666, "sha256": bytes(32)})
    writer.write({"t": "end", "frames": n_frames})
    writer.close()


def test_round_trip(tmp_path):
    path = tmp_path / "a.lpmtrace"
    _write(path)
    trace = read_trace(path)
    assert trace.version == (1, 0) and trace.header["model"]["name"] == "x"
    assert [f["seq"] for f in trace.frames] == [0, 1, 2] and not trace.truncated
    assert list(pcm_from_bytes(trace.chunks[0]["speak"])) == [0.25] * 4
    assert path.read_bytes().startswith(MAGIC)


def test_cut_short_reads_up_to_last_whole_record(tmp_path):
    path = tmp_path / "a.lpmtrace"
    _write(path)
    data = path.read_bytes()
    trace = read_trace(data[:-20])  # inside the last frame record / the end record
    assert trace.truncated and trace.end is None
    assert [f["seq"] for f in trace.frames] == [0, 1]


def test_unknown_major_version_is_refused():
    body = msgpack.packb({"t": "header", "format_version": [2, 0]}, use_bin_type=True)
    with pytest.raises(TraceFormatError, match="major version 2"):
        read_trace(MAGIC + body)
    with pytest.raises(TraceFormatError, match="not an lpm-npc trace"):
        read_trace(b"RIFF" + body)


def test_writer_refuses_bad_record_kind():
    writer = TraceWriter(io.BytesIO(), {})
    with pytest.raises(ValueError, match="t='header'"):
        writer.write({"t": "header"})


def test_frame_digest_sees_one_level():
    frame = np.zeros((4, 4, 3), np.uint8)
    other = frame.copy()
    other[2, 1, 0] = 1
    assert frame_digest(frame) != frame_digest(other)
    with pytest.raises(ValueError, match="uint8"):
        frame_digest(frame.astype(np.float32))
