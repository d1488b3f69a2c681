"""Per-frame drawing controls: `Motion` (+ blended expressions) → the knobs the painters turn.

Expressions are linear offsets on a small set of facial controls (mouth corners, lid openness,
squint, brow raise / furrow / inner lift, cheek raise, jaw); their weights blend, so 0.5 smile + 0.5
surprised is half of each. Motion channels are clamped to `SCALAR_RANGES` first. This module draws
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from lpm_npc.synth.motion import EXPRESSIONS, Motion

F32 = np.float32

# Offsets each expression adds at weight 1. Keys are `Controls` fields; `_l` / `_r` are the
# character's left (viewer's right, +x) and right eye / brow / mouth corner.
EXPRESSION_OFFSETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"smile": 1.0, "spread": 0.35, "squint_l": 0.35, "squint_r": 0.35, "cheek": 1.0},
    "laugh": {
        "smile": 1.1,
        "spread": 0.5,
        "jaw": 0.6,
        "squint_l": 0.75,
        "squint_r": 0.75,
        "cheek": 1.0,
        "brow_l": 0.25,
        "brow_r": 0.25,
    },
    "sad": {"smile": -0.9, "sad_brow": 1.0, "open_l": -0.22, "open_r": -0.22, "spread": -0.1},
    "angry": {
        "furrow": 1.0,
        "smile": -0.45,
        "spread": -0.15,
        "open_l": -0.1,
        "open_r": -0.1,
        "squint_l": 0.35,
        "squint_r": 0.35,
    },
    "surprised": {
        "brow_l": 1.0,
        "brow_r": 1.0,
        "open_l": 0.35,
        "open_r": 0.35,
        "jaw": 0.4,
        "round": 0.55,
    },
    "skeptical": {
        "brow_l": 0.9,
        "brow_r": -0.25,
        "furrow": 0.2,
        "squint_r": 0.5,
        "asym": 1.0,
        "spread": -0.1,
    },
}


@dataclass(frozen=True)
class Controls:
    """Drawing controls for G frames; every field is float32 (G,)."""

    yaw: np.ndarray  # head yaw, radians (+ = turned to the viewer's right)
    pitch: np.ndarray  # head pitch, radians (+ = nod down)
    roll: np.ndarray  # head roll, radians (+ = counter-clockwise on screen)
    body_yaw: np.ndarray  # torso yaw, radians (reference views turn the whole bust)
    head_x: np.ndarray  # head centre, world
    head_y: np.ndarray
    body_x: np.ndarray  # torso centre offset (sway), world
    breath: np.ndarray  # chest rise 0 .. 1
    jaw: np.ndarray  # mouth opening 0 .. 1
    spread: np.ndarray  # lip spread (wider, thinner) -0.5 .. 1.5
    round: np.ndarray  # lip rounding (narrow O) 0 .. 1.5
    smile: np.ndarray  # mouth corner lift -1 .. 1.2
    asym: np.ndarray  # extra lift of the character's left mouth corner 0 .. 1
    open_l: np.ndarray  # upper lid openness 0 (closed) .. 1.35 (wide)
    open_r: np.ndarray
    squint_l: np.ndarray  # lower lid raise 0 .. 1
    squint_r: np.ndarray
    brow_l: np.ndarray  # brow raise -0.5 .. 1.5
    brow_r: np.ndarray
    furrow: np.ndarray  # brows pulled down and together 0 .. 1.2
    sad_brow: np.ndarray  # inner brow ends lifted 0 .. 1
    cheek: np.ndarray  # cheek raise 0 .. 1
    gaze_x: np.ndarray  # pupils, -1 .. 1 (+ = viewer's right)
    gaze_y: np.ndarray  # pupils, -1 .. 1 (+ = up)

    @property
    def n_frames(self) -> int:
        return int(self.yaw.shape[0])

    def slice(self, start: int, stop: int) -> Controls:
        return Controls(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


_LIMITS: dict[str, tuple[float, float]] = {
    "jaw": (0.0, 1.0),
    "spread": (-0.5, 1.5),
    "round": (0.0, 1.5),
    "smile": (-1.0, 1.2),
    "asym": (0.0, 1.0),
    "open_l": (0.0, 1.35),
    "open_r": (0.0, 1.35),
    "squint_l": (0.0, 1.0),
    "squint_r": (0.0, 1.0),
    "brow_l": (-0.5, 1.5),
    "brow_r": (-0.5, 1.5),
    "furrow": (0.0, 1.2),
    "sad_brow": (0.0, 1.0),
    "cheek": (0.0, 1.0),
}


def controls_from_motion(
    motion: Motion,
    head_centre: tuple[float, float],
    *,
    extra_yaw_deg: np.ndarray | None = None,
    body_yaw_deg: np.ndarray | None = None,
) -> Controls:
    """Map clamped motion plus blended expressions to drawing controls.

    `extra_yaw_deg` lets reference stills go past the ±90° motion range (the back view is 180°).
    """
    m = motion.clamp()
    n = m.n_frames
    if m.expression.shape != (n, len(EXPRESSIONS)):
        raise ValueError(
            f"Motion.expression has shape {m.expression.shape}; expected ({n}, {len(EXPRESSIONS)})"
        )
    face = {
        "jaw": m.jaw_open.copy(),
        "spread": m.lip_spread.copy(),
        "round": m.lip_round.copy(),
        "smile": np.zeros(n, F32),
        "asym": np.zeros(n, F32),
        "open_l": 1.0 - m.blink_left,
        "open_r": 1.0 - m.blink_right,
        "squint_l": np.zeros(n, F32),
        "squint_r": np.zeros(n, F32),
        "brow_l": m.brow_raise.copy(),
        "brow_r": m.brow_raise.copy(),
        "furrow": m.brow_furrow.copy(),
        "sad_brow": np.zeros(n, F32),
        "cheek": np.zeros(n, F32),
    }
    for column, name in enumerate(EXPRESSIONS):
        weight = m.expression[:, column]
        for key, offset in EXPRESSION_OFFSETS[name].items():
            if key in ("open_l", "open_r"):
                # Lids scale with how open the eye is, so a blink still closes a surprised eye.
                face[key] = face[key] + offset * weight * face[key]
            else:
                face[key] = face[key] + offset * weight
    face = {k: np.clip(v, *_LIMITS[k]).astype(F32) for k, v in face.items()}
    yaw = m.head_yaw if extra_yaw_deg is None else m.head_yaw + extra_yaw_deg
    body = np.zeros(n, F32) if body_yaw_deg is None else np.asarray(body_yaw_deg, F32)
    rad = F32(np.pi / 180.0)
    pitch = m.head_pitch * rad
    sway = m.torso_sway * F32(0.05)
    return Controls(
        yaw=(yaw * rad).astype(F32),
        pitch=pitch.astype(F32),
        roll=(m.head_roll * rad).astype(F32),
        body_yaw=(body * rad).astype(F32),
        # The head rides on the torso and dips a little when nodding down.
        head_x=(head_centre[0] + sway * 1.3).astype(F32),
        head_y=(head_centre[1] + m.breath * 0.012 - np.sin(pitch) * 0.04).astype(F32),
        body_x=sway.astype(F32),
        breath=m.breath.astype(F32),
        gaze_x=m.gaze_x.astype(F32),
        gaze_y=m.gaze_y.astype(F32),
        **face,
    )
