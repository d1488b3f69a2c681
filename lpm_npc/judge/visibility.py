"""Can a motion channel be seen on a character? The renderer's answer, not the judge's.

Sunglasses hide blinks, a hat brim or low hair hides the brows. No reader of pixels can follow a
channel the renderer does not draw, so judge calibration (`judge.calibrate`) scores a channel only
on the conversations in which it is visible and reports the others separately.

`channel_visibility(spec, motion, name, size)` renders `frames` frames spread over `motion` twice,
with the channel at the two ends of its `swing` (its whole range; +-5 degrees for head angles) and
every other channel as played, and returns the mean per-frame change in *pixel-equivalents*: sum
|difference| over the frame and the three colours / (255 x 3), scaled to a 128 x 128 frame (a pixel
turned from black to white counts 1). It asks whether the character shows the channel at all, not
how much one conversation moves it. `VISIBLE_MIN_PX` (10) is the line; for scale see the table in
`docs/training.md` (12 held-out conversations at 128 px).

This module reads motion and renders; it does not read frames with a judge.
"""

from __future__ import annotations

import numpy as np

from lpm_npc.synth.motion import SCALAR_RANGES, Motion

VISIBLE_MIN_PX = 10.0  # pixel-equivalents at 128 px for a channel to count as visible
_REFERENCE_SIDE = 128
_ANGLE_SWING_DEG = 5.0
# Reported channels that drive several motion channels.
_COMPOUND: dict[str, tuple[str, ...]] = {"blink": ("blink_left", "blink_right")}


def motion_channels(name: str) -> tuple[str, ...]:
    """The `Motion` fields a reported channel stands for (`blink` = both eyes)."""
    return _COMPOUND.get(name, (name,))


def _with_channel(motion: Motion, name: str, value: float) -> Motion:
    arrays = {k: v.copy() for k, v in motion.to_arrays().items()}
    for field in motion_channels(name):
        arrays[field][:] = value
    return Motion.from_arrays(arrays)


def swing(name: str) -> tuple[float, float]:
    """The two values a channel is rendered at: its whole range, +-5 degrees for head angles."""
    lo, hi = SCALAR_RANGES[motion_channels(name)[0]]
    return (-_ANGLE_SWING_DEG, _ANGLE_SWING_DEG) if hi > 1.0 else (lo, hi)


def channel_visibility(spec, motion: Motion, name: str, size: int, frames: int = 6) -> float:
    """Mean pixel-equivalents (at 128 px) that swinging `name` (`swing`) changes on `frames`
    frames spread over `motion`. `spec` is a `synth.character.CharacterSpec`."""
    from lpm_npc.synth.render import render_frames

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    lo, hi = swing(name)
    index = np.linspace(0, motion.n_frames - 1, min(frames, motion.n_frames)).astype(int)
    sample = Motion.from_arrays({k: v[index] for k, v in motion.to_arrays().items()})
    low = render_frames(spec, _with_channel(sample, name, lo), size).astype(np.float32)
    high = render_frames(spec, _with_channel(sample, name, hi), size).astype(np.float32)
    per_frame = np.abs(high - low).sum(axis=(1, 2, 3)) / (255.0 * 3.0)
    return float(per_frame.mean() * (_REFERENCE_SIDE / size) ** 2)
