"""Offline generation with the StreamingGenerator: whole audio tracks in, frames out.

`render_jobs(generator, jobs)` opens one session per `RenderJob` (a prepared character), and steps
all of them together (one batched chunk per step, exactly the streaming path the daemon runs),
handing each session its speak and listen tracks chunk by chunk (`ChunkAudio`); tracks are
zero-padded (silence) to whole chunks and to the longest job. Frames are either collected, or handed to `on_chunk(job, chunk_index, frames)` so a
10-minute run need not hold every frame in memory.

Used by `lpm-npc render` and `bench quality`. It does not write files or read checkpoints.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.engine.protocol import ChunkAudio, PreparedCharacter


@dataclass(frozen=True)
class RenderJob:
    """One session to render."""

    character: PreparedCharacter  # `generator.prepare(images, roles)`
    speak: np.ndarray  # (N,) float32 16 kHz NPC track
    listen: np.ndarray  # (N,) float32 16 kHz player track (may be all zeros)
    prompt: str = ""
    seed: int = 0


@dataclass(frozen=True)
class RenderStats:
    """How long generation took."""

    chunks: int  # chunks generated per session
    frames: int  # frames per session
    media_s: float  # media seconds per session
    compute_s: float  # wall-clock seconds of generation (all sessions together)
    sessions: int  # sessions stepped together
    rtf: float  # compute_s / (media_s * sessions): < 1 is faster than real time
    chunk_ms: list[float] = field(default_factory=list)  # per-step wall-clock ms


def _padded(pcm: np.ndarray, total: int, name: str) -> np.ndarray:
    pcm = np.asarray(pcm, np.float32)
    if pcm.ndim != 1:
        raise ValueError(f"{name}: expected mono (N,) samples, got shape {pcm.shape}")
    out = np.zeros(total, np.float32)
    out[: min(total, len(pcm))] = pcm[:total]
    return out


def render_jobs(
    generator,
    jobs: list[RenderJob],
    *,
    seconds: float | None = None,
    size: int | None = None,
    collect: bool = True,
    on_chunk: Callable[[int, int, np.ndarray], None] | None = None,
    progress: bool = False,
) -> tuple[list[np.ndarray], RenderStats]:
    """Render every job for `seconds` (default: its longest track); see the module docstring."""
    if not jobs:
        raise ValueError("jobs must hold at least one RenderJob")
    cfg = generator.cfg
    per_chunk = cfg.samples_per_chunk
    if seconds is None:
        longest = max(max(len(j.speak), len(j.listen)) for j in jobs)
    else:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        # On the media clock a frame is SAMPLES_PER_FRAME samples (666, not 16000 / 24).
        longest = int(round(seconds * FPS)) * SAMPLES_PER_FRAME
    n_chunks = max(1, math.ceil(longest / per_chunk))
    total = n_chunks * per_chunk
    tracks = [(_padded(j.speak, total, "speak"), _padded(j.listen, total, "listen")) for j in jobs]
    states = [generator.open(j.character, prompt=j.prompt, seed=j.seed, size=size) for j in jobs]
    collected: list[list[np.ndarray]] = [[] for _ in jobs]
    chunk_ms: list[float] = []
    from tqdm import tqdm

    bar = tqdm(total=n_chunks, desc="render", unit="chunk", file=sys.stderr, disable=not progress)
    start = time.perf_counter()
    try:
        for k in range(n_chunks):
            span = slice(k * per_chunk, (k + 1) * per_chunk)
            audio = [ChunkAudio(span.start, speak[span], listen[span]) for speak, listen in tracks]
            t0 = time.perf_counter()
            outputs = generator.step(states, audio)
            chunk_ms.append((time.perf_counter() - t0) * 1000.0)
            for i, out in enumerate(outputs):
                if collect:
                    collected[i].append(out.frames)
                if on_chunk is not None:
                    on_chunk(i, k, out.frames)
            bar.update(1)
    finally:
        bar.close()
        for state in states:
            generator.close(state)
    compute_s = time.perf_counter() - start
    media_s = total / SAMPLE_RATE
    frames = [np.concatenate(parts) if parts else np.zeros((0,), np.uint8) for parts in collected]
    stats = RenderStats(
        chunks=n_chunks,
        frames=n_chunks * cfg.frames_per_chunk,
        media_s=media_s,
        compute_s=compute_s,
        sessions=len(jobs),
        rtf=compute_s / (media_s * len(jobs)),
        chunk_ms=chunk_ms,
    )
    return frames, stats


def mix_tracks(speak: np.ndarray, listen: np.ndarray | None) -> np.ndarray:
    """Both tracks mixed for listening (sum, peak-limited to [-1, 1])."""
    if listen is None:
        return np.asarray(speak, np.float32)
    n = max(len(speak), len(listen))
    mix = np.zeros(n, np.float32)
    mix[: len(speak)] += speak
    mix[: len(listen)] += listen
    peak = float(np.abs(mix).max()) if n else 0.0
    return mix / peak if peak > 1.0 else mix
