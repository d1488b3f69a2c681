"""What an engine session emits, in order, into its outbox: typed events for the serving layer.

- `FrameOut` — one generated frame: seq, its chunk, pts on the session's audio clock (taken from
  the generator's `ChunkFrames`, never recomputed), pixels and timing.
- `PlaybackStartedOut` / `PlaybackFinishedOut` — around each SPEAK segment (an utterance); a
  finished event with `interrupted` answers a barge-in.
- `StatusOut` — load and buffer figures, about once a second.
- `StreamEndOut` — the attached stream is over (drained, closed, or generation failed).

Times are Unix nanoseconds (`unix_ns` converts the engine's monotonic clock). Data only; the
engine session makes them (`engine/session.py`) and `serve/converse.py` delivers them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lpm_npc.engine.pacing import LoadSnapshot

# Monotonic -> Unix epoch, fixed once so converted times stay ordered.
_UNIX_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def unix_ns(monotonic_ns: int) -> int:
    return monotonic_ns + _UNIX_OFFSET_NS


@dataclass(frozen=True)
class FrameOut:
    seq: int  # chunk_index * frames_per_chunk + i
    chunk_index: int
    pts_samples: int  # from ChunkFrames.pts_samples
    image: np.ndarray  # uint8 (H, W, 3) RGB
    input_ready_unix_ns: int  # the chunk's inputs were complete
    step_started_unix_ns: int
    step_finished_unix_ns: int
    speaking: bool  # the chunk had SPEAK audio
    idle: bool  # the chunk had no audio on either track


@dataclass(frozen=True)
class PlaybackStartedOut:
    segment: int
    pts_samples: int


@dataclass(frozen=True)
class PlaybackFinishedOut:
    segment: int  # 0: an interrupt arrived while nothing was playing
    pts_samples: int
    interrupted: bool


@dataclass(frozen=True)
class StatusOut:
    load: LoadSnapshot
    queue_depth: int
    sessions: int
    dropped_chunks: int
    late_samples: int
    speak_buffered: int
    listen_buffered: int
    draining: bool


@dataclass(frozen=True)
class StreamEndOut:
    """The stream this session was attached to is finished (drained, closed, or failed)."""

    error: str = ""  # non-empty: generation failed with this message


SessionEvent = FrameOut | PlaybackStartedOut | PlaybackFinishedOut | StatusOut | StreamEndOut
