"""Training frames for the judge: conversation frames as the director plays them, plus random poses.

Items come in groups of `GROUP` (= the VAE's temporal stride) consecutive indices; item `i` is frame
`i % GROUP` of group `i // GROUP`, and each group is one of:
- a conversation window (probability `conversation_frac`): `GROUP` consecutive frames of a
  `synth.director.direct_conversation` (random prompt, so every emotion and style occurs as often
  as the director writes it) on a training character, so poses, expressions, lip-sync, listening
  nods, brow raises and blinks are distributed like the clips the judge will score. Such a group
  is a real 4-frame clip, so the stage can round-trip it through the model's VAE.
- random poses: `GROUP` independent random poses (`random_pose`, channels sampled independently
  over the ranges the director and the generator can produce) of one character, so the judge
  cannot lean on the director's correlations (e.g. nods come with brow raises) and covers the
  far yaws and extremes conversations rarely reach.
The loop's sampler hands out consecutive indices per batch (`train.loop.StepSampler`), so a batch of
a multiple of `GROUP` items holds whole groups; `JudgeObjective` checks that before using one.

Characters are training seeds (< `HELD_OUT_SEED_START`); conversations are shared by a few groups
on different characters (the motion does not depend on the face) and cached per worker, so a group
mostly costs rendering its frames. Every item is deterministic per (seed, index).
This module does not train anything and does not read generated video.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lpm_npc.judge.net import face_crop_targets, motion_targets
from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES, Motion

GROUP = 4  # frames per group: the VAE's temporal stride, so a conversation group is a VAE clip
# Poses mostly face the camera like the generator's output; a fifth of them turn far.
_NEAR_YAW_DEG = 45.0
# The brow height the renderer draws is brow_raise plus the expressions' brow offsets (surprised
# +1.0, skeptical +0.9 / -0.25, cheerful +0.25) less a furrow (0.3 of a full raise at the outer
# end, 1.2 at the inner end). With a random expression on every pose and a furrow on 70% of them,
# a judge trained 10k steps read brow_raise as a constant (0.05-0.10 for raises 0..1 on every
# character tried): half the random poses are neutral and most have no furrow, so that a raise is
# also seen on its own.
_NEUTRAL_SHARE = 0.5
_FURROW_REST = 0.6


def random_pose(rng: np.random.Generator) -> Motion:
    """One frame of motion with independently sampled channels."""
    values: dict[str, np.ndarray] = {}
    for name, (lo, hi) in SCALAR_RANGES.items():
        value = rng.uniform(lo, hi)
        if name == "head_yaw" and rng.random() < 0.8:
            value = rng.uniform(-_NEAR_YAW_DEG, _NEAR_YAW_DEG)
        if name in ("jaw_open", "blink_left", "brow_raise") and rng.random() < 0.3:
            value = lo  # rest pose is common
        if name == "brow_furrow" and rng.random() < _FURROW_REST:
            value = lo
        if name in ("head_pitch", "head_roll") and rng.random() < 0.5:
            value *= 0.5
        values[name] = np.array([value], np.float32)
    # Eyes mostly blink together.
    if rng.random() < 0.8:
        values["blink_right"] = values["blink_left"].copy()
    expression = np.zeros((1, len(EXPRESSIONS)), np.float32)
    # Neutral (column 0) with probability _NEUTRAL_SHARE, else a uniformly drawn expression.
    primary = 0 if rng.random() < _NEUTRAL_SHARE else int(rng.integers(len(EXPRESSIONS)))
    expression[0, primary] = rng.uniform(0.5, 1.0)
    if rng.random() < 0.3:
        expression[0, int(rng.integers(len(EXPRESSIONS)))] += rng.uniform(0.0, 0.4)
    values_expr = np.clip(expression, 0.0, 1.0)
    return Motion(**values, expression=values_expr)


def _concat(motions: list[Motion]) -> Motion:
    arrays = [m.to_arrays() for m in motions]
    return Motion.from_arrays({k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})


class JudgeFrames(Dataset):
    """Map-style dataset of (frame uint8 (S, S, 3), scalars (n_scalars,), expression (n_expr,),
    face crop (3,), group id, is-a-clip flag). See the module docstring."""

    def __init__(
        self,
        seed: int,
        size: int,
        n_characters: int = 4096,
        *,
        conversation_frac: float = 0.7,
        conversation_seconds: float = 8.0,
        groups_per_conversation: int = 4,
        cache_conversations: int = 64,
    ) -> None:
        from lpm_npc.synth.dataset import HELD_OUT_SEED_START

        if n_characters < 1:
            raise ValueError(f"n_characters must be >= 1, got {n_characters}")
        if not 0.0 <= conversation_frac <= 1.0:
            raise ValueError(f"conversation_frac must be in [0, 1], got {conversation_frac}")
        if conversation_seconds < 1.0:
            raise ValueError(f"conversation_seconds must be >= 1, got {conversation_seconds}")
        if groups_per_conversation < 1:
            raise ValueError(f"groups_per_conversation must be >= 1, got {groups_per_conversation}")
        self.seed, self.size, self.n_characters = int(seed), int(size), int(n_characters)
        self.conversation_frac = float(conversation_frac)
        self.conversation_seconds = float(conversation_seconds)
        self.groups_per_conversation = int(groups_per_conversation)
        self.held_out_start = HELD_OUT_SEED_START
        self._conversations: dict[int, Motion] = {}
        self._cache_conversations = int(cache_conversations)
        self._group: tuple[int, tuple] | None = None  # the last rendered group (per worker)

    def __len__(self) -> int:
        return 2**62

    def character_seed(self, group: int) -> int:
        """A training character seed (< HELD_OUT_SEED_START) for `group`."""
        return int((self.seed * 100_003 + (group * 7919) % self.n_characters) % self.held_out_start)

    def _conversation_motion(self, conversation: int) -> Motion:
        from lpm_npc.synth.director import direct_conversation

        if conversation not in self._conversations:
            if len(self._conversations) >= self._cache_conversations:
                self._conversations.pop(next(iter(self._conversations)))
            seed = int(np.random.default_rng([self.seed, conversation, 0xC0]).integers(2**31))
            conv = direct_conversation(seed, self.conversation_seconds)
            self._conversations[conversation] = conv.motion
        return self._conversations[conversation]

    def _render_group(self, group: int) -> tuple:
        from lpm_npc.synth.character import CharacterSpec
        from lpm_npc.synth.face_boxes import face_boxes
        from lpm_npc.synth.render import render_frames

        rng = np.random.default_rng([self.seed, group])
        spec = CharacterSpec.from_seed(self.character_seed(group))
        smooth = bool(rng.random() < self.conversation_frac)
        if smooth:
            # Consecutive groups draw from a rotating set of conversations: a batch of 8 groups
            # sees 8 different ones, and each is reused by `groups_per_conversation` batches.
            span = 8 * self.groups_per_conversation
            conversation = (group % 8) + 8 * (group // span)
            full = self._conversation_motion(conversation)
            start = int(rng.integers(full.n_frames - GROUP + 1))
            motion = full.slice(start, start + GROUP)
        else:
            motion = _concat([random_pose(rng) for _ in range(GROUP)])
        frames = render_frames(spec, motion, self.size)
        scalars, expression = motion_targets(motion)
        crops = face_crop_targets(face_boxes(spec, motion, self.size).face, self.size)
        return frames, scalars, expression, crops, smooth

    def __getitem__(
        self, index: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, bool]:
        group, k = divmod(int(index), GROUP)
        if self._group is None or self._group[0] != group:
            self._group = (group, self._render_group(group))
        frames, scalars, expression, crops, smooth = self._group[1]
        return frames[k], scalars[k], expression[k], crops[k], group, smooth


def collate_frames(items) -> dict[str, torch.Tensor]:
    """Stack `JudgeFrames` items: frames (B, S, S, 3) uint8, scalars, expression, crop (B, 3),
    group (B,) int64, smooth (B,) bool."""
    frames, scalars, expression, crops, groups, smooth = zip(*items)
    return {
        "frames": torch.from_numpy(np.stack(frames)),
        "scalars": torch.from_numpy(np.stack(scalars)),
        "expression": torch.from_numpy(np.stack(expression)),
        "crop": torch.from_numpy(np.stack(crops)),
        "group": torch.tensor(groups, dtype=torch.int64),
        "smooth": torch.tensor(smooth, dtype=torch.bool),
    }
