"""Training frames for the judge: random characters in random, independent poses.

Every item is one rendered frame of a character drawn from a seed stream, in a pose whose channels are
sampled independently (so the judge cannot learn the director's correlations, e.g. "jaw open implies
brow up") over the ranges the director and the generator can produce, with extra mass at rest values
(closed jaw, open eyes) where real footage sits most of the time. Deterministic per (seed, index).

This module does not train anything and does not read generated video.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lpm_npc.judge.net import motion_targets
from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES, Motion

# Poses mostly face the camera like the generator's output; a fifth of them turn far.
_NEAR_YAW_DEG = 45.0


def random_pose(rng: np.random.Generator) -> Motion:
    """One frame of motion with independently sampled channels."""
    values: dict[str, np.ndarray] = {}
    for name, (lo, hi) in SCALAR_RANGES.items():
        value = rng.uniform(lo, hi)
        if name == "head_yaw" and rng.random() < 0.8:
            value = rng.uniform(-_NEAR_YAW_DEG, _NEAR_YAW_DEG)
        if name in ("jaw_open", "blink_left", "brow_raise", "brow_furrow") and rng.random() < 0.3:
            value = lo  # rest pose is common
        if name in ("head_pitch", "head_roll") and rng.random() < 0.5:
            value *= 0.5
        values[name] = np.array([value], np.float32)
    # Eyes mostly blink together.
    if rng.random() < 0.8:
        values["blink_right"] = values["blink_left"].copy()
    expression = np.zeros((1, len(EXPRESSIONS)), np.float32)
    primary = int(rng.integers(len(EXPRESSIONS)))
    expression[0, primary] = rng.uniform(0.5, 1.0)
    if rng.random() < 0.3:
        expression[0, int(rng.integers(len(EXPRESSIONS)))] += rng.uniform(0.0, 0.4)
    values_expr = np.clip(expression, 0.0, 1.0)
    return Motion(**values, expression=values_expr)


class JudgeFrames(Dataset):
    """Map-style dataset of (frame uint8 (S,S,3), scalars (n_scalars,), expression (n_expr,))."""

    def __init__(self, seed: int, size: int, n_characters: int = 4096) -> None:
        if n_characters < 1:
            raise ValueError(f"n_characters must be >= 1, got {n_characters}")
        self.seed, self.size, self.n_characters = seed, size, n_characters

    def __len__(self) -> int:
        return 2**62

    def character_seed(self, index: int) -> int:
        return int(self.seed * 100_003 + (index * 7919) % self.n_characters)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from lpm_npc.synth.character import CharacterSpec
        from lpm_npc.synth.render import render_frames

        rng = np.random.default_rng([self.seed, index])
        spec = CharacterSpec.from_seed(self.character_seed(index))
        motion = random_pose(rng)
        frame = render_frames(spec, motion, self.size)[0]
        scalars, expression = motion_targets(motion)
        return frame, scalars[0], expression[0]


def collate_frames(items) -> dict[str, torch.Tensor]:
    frames, scalars, expression = zip(*items)
    return {
        "frames": torch.from_numpy(np.stack(frames)),
        "scalars": torch.from_numpy(np.stack(scalars)),
        "expression": torch.from_numpy(np.stack(expression)),
    }
