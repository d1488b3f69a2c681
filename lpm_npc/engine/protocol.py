"""The engine's typed boundary: what the scheduler and the serve layer need from a generator.

`ChunkGenerator` is the one interface both depend on (`StreamingGenerator` implements it; tests
use fakes):

- `cfg` — the `ModelConfig` (chunk length, native size, reference limit).
- `prepare(images, roles, *, name="") -> PreparedCharacter` — reference images uint8 (R, S, S, 3)
  with one (role, label) each -> the character's reference K/V; once per character version.
- `open(character, *, prompt="", seed=0, size=None) -> state` — a session handle (opaque).
- `step(states, audio) -> list[ChunkFrames]` — one chunk for every given session, batched;
  `audio[i]` holds exactly that chunk's samples of session i (the engine session's track buffers
  are the only audio buffers; the generator keeps none).
- `set_prompt(state, prompt)` — applies from the next chunk; `close(state)` — releases it.

And the dataclasses that cross it: `PreparedCharacter`, `ChunkAudio` (engine -> generator) and
`ChunkFrames` (generator -> engine), whose pts are computed once, by `frame_pts`, from the
clock position of the chunk's audio. The engine knows nothing of gRPC; this module holds no logic
beyond that one formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lpm_npc.config import SAMPLES_PER_FRAME, ModelConfig
from lpm_npc.model.caches import ReferenceCache


@dataclass(frozen=True)
class PreparedCharacter:
    """Reference K/V of one character, shared read-only by its sessions (cache per version)."""

    name: str  # a caller-chosen label (the sheet name)
    roles: tuple[tuple[str, str], ...]  # (role, label) of each kept reference, in order
    backbone_refs: ReferenceCache  # per backbone layer, un-roped
    refiner_refs: ReferenceCache  # per refiner layer, un-roped
    model_name: str  # ModelConfig.name it was prepared with (sessions must match)


@dataclass(frozen=True)
class ChunkAudio:
    """Exactly one chunk of both tracks of one session, placed on the session's sample clock."""

    start_sample: int  # clock position of the chunk's first sample (a multiple of the chunk)
    speak: np.ndarray  # float32 (samples_per_chunk,), silence where nothing arrived
    listen: np.ndarray  # float32 (samples_per_chunk,)

    @property
    def chunk_index(self) -> int:
        return self.start_sample // len(self.speak)


@dataclass(frozen=True)
class ChunkFrames:
    """The frames of one generated chunk of one session."""

    chunk_index: int  # k = start_sample // samples_per_chunk
    frames: np.ndarray  # uint8 (N, H, W, 3) RGB at the session's size
    pts_samples: np.ndarray  # int64 (N,) `frame_pts(start_sample, N)`
    started_ns: int  # time.monotonic_ns() when the batched step began
    finished_ns: int  # time.monotonic_ns() when this step's frames were decoded


def frame_pts(start_sample: int, n_frames: int) -> np.ndarray:
    """pts of the frames of a chunk starting at `start_sample`: frame i shows the audio at
    start_sample + i * SAMPLES_PER_FRAME (the only place pts are computed)."""
    return start_sample + np.arange(n_frames, dtype=np.int64) * SAMPLES_PER_FRAME


class ChunkGenerator(Protocol):
    """What the scheduler and the serve layer call (see the module docstring)."""

    cfg: ModelConfig

    def prepare(
        self, images: np.ndarray, roles: Sequence[tuple[str, str]], *, name: str = ""
    ) -> PreparedCharacter: ...

    def open(
        self,
        character: PreparedCharacter,
        *,
        prompt: str = "",
        seed: int = 0,
        size: int | None = None,
    ) -> Any: ...

    def step(self, states: Sequence[Any], audio: Sequence[ChunkAudio]) -> list[ChunkFrames]: ...

    def set_prompt(self, state: Any, prompt: str) -> None: ...

    def close(self, state: Any) -> None: ...
