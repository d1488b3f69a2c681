"""Per-frame motion parameters: the ground truth the director writes and the renderer draws.

A `Motion` holds one float32 array per parameter, all of length T (frames at `config.FPS`), plus
expression weights of shape (T, len(EXPRESSIONS)) that blend. This module only defines the data; it
neither renders nor directs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Expressions the renderer can blend; index order is the column order of `Motion.expression`.
from lpm_npc.vocab import EXPRESSIONS

# Scalar motion channels and their allowed ranges (renderer clamps to these).
SCALAR_RANGES: dict[str, tuple[float, float]] = {
    "jaw_open": (0.0, 1.0),
    "lip_round": (0.0, 1.0),
    "lip_spread": (0.0, 1.0),
    "blink_left": (0.0, 1.0),  # 1 = eye fully closed
    "blink_right": (0.0, 1.0),
    "brow_raise": (0.0, 1.0),
    "brow_furrow": (0.0, 1.0),
    "head_yaw": (-90.0, 90.0),  # degrees, + = character turns to its left (viewer's right)
    "head_pitch": (-30.0, 30.0),  # degrees, + = nod down
    "head_roll": (-30.0, 30.0),  # degrees
    "gaze_x": (-1.0, 1.0),  # pupils, + = viewer's right
    "gaze_y": (-1.0, 1.0),  # pupils, + = up
    "torso_sway": (-1.0, 1.0),  # lateral sway of the torso
    "breath": (0.0, 1.0),  # chest rise
}


@dataclass
class Motion:
    """T frames of motion. Arrays are float32; `expression` rows need not sum to 1 (they blend)."""

    jaw_open: np.ndarray
    lip_round: np.ndarray
    lip_spread: np.ndarray
    blink_left: np.ndarray
    blink_right: np.ndarray
    brow_raise: np.ndarray
    brow_furrow: np.ndarray
    head_yaw: np.ndarray
    head_pitch: np.ndarray
    head_roll: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    torso_sway: np.ndarray
    breath: np.ndarray
    expression: np.ndarray  # (T, len(EXPRESSIONS))

    @property
    def n_frames(self) -> int:
        return int(self.jaw_open.shape[0])

    @classmethod
    def neutral(cls, n_frames: int) -> Motion:
        """A still, neutral, front-facing pose for `n_frames` frames."""
        zeros = {name: np.zeros(n_frames, np.float32) for name in SCALAR_RANGES}
        expression = np.zeros((n_frames, len(EXPRESSIONS)), np.float32)
        expression[:, 0] = 1.0
        return cls(**zeros, expression=expression)

    def slice(self, start: int, stop: int) -> Motion:
        return Motion(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict for `np.savez` (motion.npz)."""
        return {f.name: np.asarray(getattr(self, f.name), np.float32) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Motion:
        return cls(**{f.name: np.asarray(arrays[f.name], np.float32) for f in fields(cls)})

    def clamp(self) -> Motion:
        """A copy with every scalar channel clipped to its range and expressions to [0, 1]."""
        out = {
            n: np.clip(getattr(self, n), lo, hi).astype(np.float32)
            for n, (lo, hi) in SCALAR_RANGES.items()
        }
        return Motion(**out, expression=np.clip(self.expression, 0.0, 1.0).astype(np.float32))
