"""Training clips from the procedural world, deterministic per (seed, index) and worker-safe.

`ClipDataset(seed, size, n_frames)` is a map-style torch Dataset: item `i` is a `Clip` (reference
sheet images of a character, aligned speak/listen audio, rendered frames and their ground-truth
motion, the prompt) computed only from `(seed, i)`, so any number of DataLoader workers yield the
same data in any order. `collate_clips` stacks clips into a `ClipBatch` of torch tensors.

Why it is cheap: characters come from a fixed pool (`n_characters` seeds drawn from the dataset
seed), and each character has a few long directed conversations; a clip is a random window of one
of them. Characters (spec + rendered sheet) and conversations are cached per worker (bounded LRU),
so a clip mostly costs rendering its `n_frames` frames.

Held-out identities: training seeds are always < `HELD_OUT_SEED_START`; `held_out_character_seeds`
lists seeds from there on for benchmarks. This module does not train or evaluate anything.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lpm_npc.config import FPS, SAMPLES_PER_FRAME
from lpm_npc.synth.director import Conversation, direct_conversation
from lpm_npc.synth.motion import Motion

if TYPE_CHECKING:
    from lpm_npc.synth.character import CharacterSpec

log = logging.getLogger(__name__)

HELD_OUT_SEED_START = 1_000_000  # character seeds >= this are never used for training


def held_out_character_seeds(n: int, start: int = HELD_OUT_SEED_START) -> list[int]:
    """`n` character seeds never drawn by training (for LPM-Bench-synth)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if start < HELD_OUT_SEED_START:
        raise ValueError(f"start must be >= {HELD_OUT_SEED_START}, got {start}")
    return list(range(start, start + n))


@dataclass(frozen=True)
class Clip:
    """One training example (see the module docstring)."""

    references: np.ndarray  # (R, H, W, 3) uint8 reference sheet images
    reference_roles: list[tuple[str, str]]  # (role, label) per reference
    speak: np.ndarray  # (n_frames * 666,) float32 NPC track
    listen: np.ndarray  # (n_frames * 666,) float32 player track
    frames: np.ndarray  # (T, H, W, 3) uint8 rendered video
    motion: Motion  # T frames of ground truth
    prompt: str
    character_seed: int
    boxes: np.ndarray  # (T, 3, 4) int32 face / mouth / eye pixel boxes (`face_boxes.FaceBoxes`)


@dataclass(frozen=True)
class ClipBatch:
    """Stacked clips as torch tensors (B = batch)."""

    references: torch.Tensor  # (B, R, H, W, 3) uint8
    reference_roles: list[list[tuple[str, str]]]
    speak: torch.Tensor  # (B, N) float32
    listen: torch.Tensor  # (B, N) float32
    frames: torch.Tensor  # (B, T, H, W, 3) uint8
    motion: dict[str, torch.Tensor]  # name -> (B, T) float32; "expression" -> (B, T, E)
    prompts: list[str]
    character_seeds: torch.Tensor  # (B,) int64

    def video(self) -> torch.Tensor:
        """Frames as model input: (B, 3, T, H, W) float32 in [-1, 1]."""
        return to_model_video(self.frames)

    def reference_video(self) -> torch.Tensor:
        """References as model input: (B, 3, R, H, W) float32 in [-1, 1]."""
        return to_model_video(self.references)


def to_model_video(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, 3, T, H, W) in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def collate_clips(clips: list[Clip]) -> ClipBatch:
    """Stack clips of equal shapes into a ClipBatch (use as DataLoader `collate_fn`)."""
    if not clips:
        raise ValueError("clips must hold at least one Clip")
    shapes = {(c.references.shape, c.frames.shape, c.speak.shape) for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"clips must share reference, frame and audio shapes, got {shapes}")
    arrays = [c.motion.to_arrays() for c in clips]
    return ClipBatch(
        references=torch.from_numpy(np.stack([c.references for c in clips])),
        reference_roles=[list(c.reference_roles) for c in clips],
        speak=torch.from_numpy(np.stack([c.speak for c in clips])),
        listen=torch.from_numpy(np.stack([c.listen for c in clips])),
        frames=torch.from_numpy(np.stack([c.frames for c in clips])),
        motion={k: torch.from_numpy(np.stack([a[k] for a in arrays])) for k in arrays[0]},
        prompts=[c.prompt for c in clips],
        character_seeds=torch.tensor([c.character_seed for c in clips], dtype=torch.int64),
    )


class _LRU:
    """A tiny bounded cache (per dataset instance, hence per DataLoader worker)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = build()
        self.items[key] = value
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)
        return value


class ClipDataset(Dataset):
    """Random clips, deterministic per (seed, index). See the module docstring."""

    def __init__(
        self,
        seed: int,
        size: int,
        n_frames: int,
        *,
        length: int = 1_000_000,
        n_characters: int = 256,
        character_seeds: list[int] | None = None,
        conversations_per_character: int = 4,
        conversation_seconds: float = 6.0,
        prompt: str | None = None,
        cache_characters: int = 128,
        cache_conversations: int = 32,
    ) -> None:
        """`character_seeds` overrides the drawn pool (e.g. `held_out_character_seeds(n)` for
        evaluation); otherwise `n_characters` training seeds (< HELD_OUT_SEED_START) are drawn
        from `seed`. `prompt` fixes every conversation's prompt (None = random per conversation).
        """
        if n_frames < 4 or n_frames % 4:
            raise ValueError(f"n_frames must be a positive multiple of 4, got {n_frames}")
        from lpm_npc.synth.render import MAX_SIZE, MIN_SIZE

        if not MIN_SIZE <= size <= MAX_SIZE or size % 8:
            raise ValueError(
                f"size must be a multiple of 8 in [{MIN_SIZE}, {MAX_SIZE}], got {size}"
            )
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if conversations_per_character < 1:
            raise ValueError(
                f"conversations_per_character must be >= 1, got {conversations_per_character}"
            )
        if character_seeds is None:
            if not 1 <= n_characters <= HELD_OUT_SEED_START:
                raise ValueError(f"n_characters must be in [1, {HELD_OUT_SEED_START}]")
            rng = np.random.default_rng([int(seed), 0xC4A2])
            pool = rng.choice(HELD_OUT_SEED_START, size=n_characters, replace=False)
            character_seeds = [int(s) for s in pool]
        elif not character_seeds:
            raise ValueError("character_seeds must not be empty")
        self.seed = int(seed)
        self.size = int(size)
        self.n_frames = int(n_frames)
        self.length = int(length)
        self.character_seeds = list(character_seeds)
        self.conversations_per_character = conversations_per_character
        # Conversations must hold a window with some room to move it around.
        self.conversation_seconds = max(float(conversation_seconds), n_frames / FPS + 2.0)
        self.prompt = prompt
        self._characters = _LRU(cache_characters)
        self._conversations = _LRU(cache_conversations)

    def __len__(self) -> int:
        return self.length

    def _character(self, character_seed: int) -> tuple[CharacterSpec, np.ndarray, list]:
        from lpm_npc.synth.character import CharacterSpec
        from lpm_npc.synth.sheet import render_sheet, sheet_to_array

        def build() -> tuple[CharacterSpec, np.ndarray, list]:
            spec = CharacterSpec.from_seed(character_seed)
            images, roles = sheet_to_array(render_sheet(spec, self.size), self.size)
            return spec, images, [tuple(r) for r in roles]

        return self._characters.get(character_seed, build)

    def _conversation(
        self, character_seed: int, conversation: int, spec: CharacterSpec
    ) -> Conversation:
        key = (character_seed, conversation)
        conv_seed = int(
            np.random.default_rng([self.seed, character_seed, conversation]).integers(2**31)
        )
        return self._conversations.get(
            key,
            lambda: direct_conversation(
                conv_seed, self.conversation_seconds, prompt=self.prompt, spec=spec
            ),
        )

    def __getitem__(self, index: int) -> Clip:
        from lpm_npc.synth.face_boxes import face_boxes
        from lpm_npc.synth.render import render_frames

        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        rng = np.random.default_rng([self.seed, int(index), 0xC11B])
        character_seed = self.character_seeds[int(rng.integers(len(self.character_seeds)))]
        spec, references, roles = self._character(character_seed)
        conv = self._conversation(
            character_seed, int(rng.integers(self.conversations_per_character)), spec
        )
        start = int(rng.integers(conv.motion.n_frames - self.n_frames + 1))
        stop = start + self.n_frames
        motion = conv.motion.slice(start, stop)
        a, b = start * SAMPLES_PER_FRAME, stop * SAMPLES_PER_FRAME
        return Clip(
            references=references,
            reference_roles=list(roles),
            speak=conv.speak[a:b].copy(),
            listen=conv.listen[a:b].copy(),
            frames=render_frames(spec, motion, self.size),
            motion=motion,
            prompt=conv.script.prompt,
            character_seed=character_seed,
            boxes=face_boxes(spec, motion, self.size).stacked(),
        )
