"""MP4 input/output with PyAV: H.264 video (yuv420p) plus optional AAC mono audio.

`write_mp4(path, frames, fps, audio=None)` writes uint8 (T, H, W, 3) RGB frames (H and W even, as
yuv420p requires) and, when given, float32 16 kHz mono audio; `read_mp4(path)` returns the decoded
frames and the frame rate, `read_mp4_audio(path)` the decoded audio. Lossy: read frames are close
to, not equal to, the written ones. This module does not render or mix anything.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from lpm_npc.config import SAMPLE_RATE
from lpm_npc.synth.audio_io import validate_pcm

log = logging.getLogger(__name__)

_AAC_FRAME = 1024  # samples per AAC frame


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("frames must hold at least 1 frame, got 0")
    if h % 2 or w % 2:
        raise ValueError(f"frame height and width must be even for H.264 yuv420p, got {h}x{w}")
    return frames


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    *,
    crf: int = 18,
) -> Path:
    """Write frames (and optional 16 kHz mono float audio) to an H.264/AAC MP4."""
    import av

    frames = _check_frames(frames)
    if not 1 <= int(fps) <= 240:
        raise ValueError(f"fps must be in [1, 240], got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=int(fps))
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        audio_stream = None
        if audio is not None:
            pcm = validate_pcm(audio, "audio")
            audio_stream = container.add_stream("aac", rate=SAMPLE_RATE)
            audio_stream.layout = "mono"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, np.clip(pcm, -1.0, 1.0))
    return path


def _encode_audio(container, stream, pcm: np.ndarray) -> None:  # noqa: ANN001 - PyAV objects
    import av

    for start in range(0, len(pcm), _AAC_FRAME):
        chunk = pcm[start : start + _AAC_FRAME][None, :].astype(np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, SAMPLE_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def read_mp4(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode all video frames as uint8 (T, H, W, 3) RGB; returns (frames, fps)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: corrupt or unsupported video: {error}") from error
    if not frames:
        raise ValueError(f"{path}: video stream holds no frames")
    return np.stack(frames), fps


def read_mp4_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream as float32 mono; returns (pcm, sample_rate)."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            chunks = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
            rate = int(stream.rate)
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: corrupt or unsupported audio: {error}") from error
    if not chunks:
        return np.zeros(0, np.float32), rate
    # Planar float frames are (channels, n); mix to mono.
    return np.concatenate([c.reshape(c.shape[0], -1).mean(axis=0) for c in chunks]), rate
