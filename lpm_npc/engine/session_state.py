"""Per-character and per-session state of the streaming generator, and what a step returns.

- `PreparedCharacter`: a character's reference K/V for the backbone and the refiner, computed once
  (`StreamingGenerator.prepare`) and shared, read-only, by every session of that character.
- `TrackBuffer`: the not-yet-consumed PCM of one audio track of one session.
- `SessionState`: everything one session owns: its audio buffers, audio-encoder caches, text
  context, history ring, VAE decode cache, noise generator and chunk counter. The generator mutates
  it; callers treat it as an opaque handle.
- `ChunkFrames`: the frames of one generated chunk with their pts on the session's audio clock.

This module holds data only; the generator does the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lpm_npc.model.caches import HistoryRing, ReferenceCache


@dataclass(frozen=True)
class PreparedCharacter:
    """Reference K/V of one character (cache it per character version)."""

    name: str  # sheet name (or a caller-chosen label)
    roles: tuple[tuple[str, str], ...]  # (role, label) of each reference, in order
    backbone_refs: ReferenceCache  # per backbone layer, un-roped
    refiner_refs: ReferenceCache  # per refiner layer, un-roped
    model_name: str  # ModelConfig.name it was prepared with (sessions must match)

    def nbytes(self) -> int:
        return self.backbone_refs.nbytes() + self.refiner_refs.nbytes()


@dataclass(frozen=True)
class ChunkFrames:
    """Frames of one chunk. Frame i of chunk k has pts k*samples_per_chunk + i*SAMPLES_PER_FRAME."""

    chunk_index: int  # k, counted from 0 per session
    frames: np.ndarray  # uint8 (N, H, W, 3) RGB at the session's size
    pts_samples: np.ndarray  # int64 (N,) pts of each frame on the session's audio clock
    started_ns: int  # time.monotonic_ns() when the batched step began
    finished_ns: int  # time.monotonic_ns() when this session's frames were ready


class TrackBuffer:
    """Growable float32 PCM buffer of one track; `take` consumes from the front."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._available = 0
        self.received = 0  # samples fed since the session opened

    @property
    def available(self) -> int:
        return self._available

    def append(self, pcm: np.ndarray) -> None:
        if pcm.size:
            self._parts.append(pcm)
            self._available += pcm.size
            self.received += pcm.size

    def take(self, n: int, *, pad: bool) -> np.ndarray:
        """The next n samples; with `pad`, missing samples are silence. Without, n must be there."""
        if n > self._available and not pad:
            raise ValueError(f"track has {self._available} samples buffered, {n} needed")
        joined = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        out = np.zeros(n, dtype=np.float32)
        used = min(n, joined.size)
        out[:used] = joined[:used]
        rest = joined[used:]
        self._parts = [rest] if rest.size else []
        self._available = rest.size
        return out


@dataclass
class SessionState:
    """One session's mutable state (an opaque handle for callers)."""

    character: PreparedCharacter
    prompt: str
    seed: int
    size: int  # output frame side, px
    noise: torch.Generator  # this session's own noise stream (determinism per seed)
    history: HistoryRing  # backbone K/V of the last history_chunks committed chunks
    text: Tensor  # (1, Lt, text_dim) text encoder output of `prompt`
    text_mask: Tensor | None  # (1, Lt) bool
    speak_cache: Any  # AudioEncoder streaming cache of the SPEAK track
    listen_cache: Any  # AudioEncoder streaming cache of the LISTEN track
    decode_cache: Any  # VideoVAE streaming decode cache
    speak: TrackBuffer = field(default_factory=TrackBuffer)
    listen: TrackBuffer = field(default_factory=TrackBuffer)
    chunk_index: int = 0  # next chunk to generate
    closed: bool = False
