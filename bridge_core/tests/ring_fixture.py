"""Writes shared-memory frame rings with the daemon's own writer (lpm_npc.serve.shm_ring) for the
bridge_core ring tests and benchmark, so the C++ reader is tested against the real layout.

Frame `seq` has pts_samples = seq * 666 and pixel (y, x) = ((seq + y) & 255, (3 * seq + x) & 255,
(7 * seq) & 255, 255): a reader can check every byte of a copy against its frame_seq.

    write NAME W H SLOTS FRAMES [--close]      FRAMES frames; --close sets the closed flag (kept)
    hold NAME W H SLOTS FRAMES                 write, print "ready", close+unlink on a stdin line
    race NAME W H SLOTS SECONDS                write as fast as possible, print "done N", unlink
    stuck NAME W H SLOTS FRAMES SLOT           then leave SLOT's sequence odd (a writer that died
                                               mid-write)
    corrupt NAME W H SLOTS FRAMES FIELD        then damage FIELD: magic, version, format, stride,
                                               truncate
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time

import numpy as np

from lpm_npc.serve.shm_ring import HEADER_SIZE, FrameRingWriter, ring_path


def pattern(seq: int, height: int, width: int) -> np.ndarray:
    y = np.arange(height, dtype=np.int64)[:, None]
    x = np.arange(width, dtype=np.int64)[None, :]
    image = np.empty((height, width, 4), np.uint8)
    image[..., 0] = (seq + y) & 255
    image[..., 1] = (3 * seq + x) & 255
    image[..., 2] = (7 * seq) & 255
    image[..., 3] = 255
    return image


def make(name: str, width: int, height: int, slots: int) -> FrameRingWriter:
    ring_path(name).unlink(missing_ok=True)  # a leftover of a crashed test run
    return FrameRingWriter(name, width, height, slots)


def write_frames(writer: FrameRingWriter, count: int) -> None:
    g = writer.geometry
    for seq in range(count):
        writer.write(seq, seq * 666, pattern(seq, g.height, g.width))


def patch(name: str, offset: int, fmt: str, value: int) -> None:
    with open(ring_path(name), "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        struct.pack_into(fmt, m, offset, value)


def main(argv: list[str]) -> int:
    mode, name = argv[0], argv[1]
    width, height, slots = int(argv[2]), int(argv[3]), int(argv[4])
    writer = make(name, width, height, slots)
    if mode == "write":
        write_frames(writer, int(argv[5]))
        if "--close" in argv:
            writer.close(unlink=False)
    elif mode == "hold":
        write_frames(writer, int(argv[5]))
        print("ready", flush=True)
        sys.stdin.readline()
        writer.close(unlink=True)
        print("closed", flush=True)
        sys.stdin.read()  # exit when the test closes our stdin
    elif mode == "race":
        seconds = float(argv[5])
        frames = [pattern(seq, height, width) for seq in range(256)]  # the pattern repeats at 256
        writer.write(0, 0, frames[0])
        print("ready", flush=True)
        seq, end = 1, time.monotonic() + seconds
        while time.monotonic() < end:
            writer.write(seq, seq * 666, frames[seq % 256])
            seq += 1
        writer.close(unlink=True)
        print(f"done {seq}", flush=True)
    elif mode == "stuck":
        write_frames(writer, int(argv[5]))
        slot = int(argv[6])
        base = HEADER_SIZE + slot * writer.geometry.slot_stride
        with open(ring_path(name), "rb") as f:
            (sequence,) = struct.unpack_from("<Q", f.read(base + 8), base)
        patch(name, base, "<Q", sequence + 1)
    elif mode == "corrupt":
        write_frames(writer, int(argv[5]))
        field = argv[6]
        if field == "magic":
            patch(name, 0, "<Q", int.from_bytes(b"NOTARING", "little"))
        elif field == "version":
            patch(name, 8, "<I", 2)
        elif field == "format":
            patch(name, 28, "<I", 7)
        elif field == "stride":
            patch(name, 24, "<I", width * 4 + 4)
        elif field == "truncate":
            os.truncate(ring_path(name), writer.geometry.total_bytes - 64)
        else:
            raise SystemExit(f"unknown field {field!r}")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(ring_path(name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
