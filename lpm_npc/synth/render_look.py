"""Turns a `CharacterSpec` (categories) into the numbers the renderer draws with (`Look`).

All lengths are world units of the default framing (the image spans [-1, 1]; the head is about 0.75
wide). Colours are float32 RGB in [0, 1]. `look_for(spec)` is cached, so per-character work happens
once. This module draws nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lpm_npc.synth.character import CharacterSpec

F32 = np.float32


def _rgb(c) -> np.ndarray:
    return np.asarray(c, dtype=F32)


@dataclass(frozen=True)
class HairShape:
    """A hair style as a shell around the skull, cut along a hairline, plus optional extras."""

    volume: float  # shell radii = skull radii × volume (0 = no shell)
    lift: float  # shell centre raised above the skull centre (volume on top)
    front: float  # hairline height at the forehead, in normalised shell y (-1 .. 1)
    side: float  # hairline height at the temples / sides
    back: float  # hairline height at the nape
    fringe_waves: float  # amplitude of a wavy fringe edge
    part: float  # asymmetric sweep of the front hairline (side part), + lower on viewer's left
    back_hair: float  # length of hair hanging behind the shoulders (0 = none), world units
    curls: float  # bumpiness of silhouette and curl texture, 0 .. 1
    bun: bool  # a bun on the back of the head
    stubble: float  # how much skin shows through (buzz cut), 0 .. 1


HAIR: dict[str, HairShape] = {
    "bald": HairShape(0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, False, 0.0),
    "buzz": HairShape(1.015, 0.0, 0.52, 0.2, -0.3, 0.0, 0.0, 0.0, 0.0, False, 0.45),
    "crop": HairShape(1.07, 0.03, 0.46, 0.12, -0.35, 0.05, 0.0, 0.0, 0.0, False, 0.0),
    "side_part": HairShape(1.1, 0.05, 0.36, 0.05, -0.4, 0.0, 0.22, 0.0, 0.0, False, 0.0),
    "bob": HairShape(1.13, 0.04, 0.3, -0.62, -0.7, 0.03, 0.0, 0.0, 0.0, False, 0.0),
    "long": HairShape(1.1, 0.03, 0.52, -0.55, -0.8, 0.0, 0.0, 0.62, 0.0, False, 0.0),
    "curly": HairShape(1.24, 0.08, 0.42, -0.2, -0.55, 0.06, 0.0, 0.22, 1.0, False, 0.0),
    "bun": HairShape(1.05, 0.02, 0.5, 0.1, -0.3, 0.0, 0.0, 0.0, 0.0, True, 0.0),
}

# Skull radii (x, y, z) and the chin: jaw widening and chin taper applied below the head centre.
FACE: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "round": ((0.37, 0.44, 0.40), 0.05, 0.30),
    "oval": ((0.34, 0.46, 0.40), 0.0, 0.38),
    "square": ((0.37, 0.44, 0.40), 0.12, 0.22),
    "heart": ((0.37, 0.45, 0.40), -0.05, 0.55),
    "long": ((0.32, 0.49, 0.40), 0.02, 0.36),
}

# Eye opening: half width, upper and lower lid heights, tilt of the outer corner (+ = up).
EYES: dict[str, tuple[float, float, float, float]] = {
    "round": (0.078, 0.06, 0.048, 0.0),
    "almond": (0.086, 0.054, 0.034, 0.12),
    "narrow": (0.088, 0.04, 0.026, 0.05),
    "droopy": (0.082, 0.052, 0.036, -0.16),
    "upturned": (0.082, 0.054, 0.032, 0.22),
}

# Brows: half length, thickness, arch height, inner-end thickness factor.
BROWS: dict[str, tuple[float, float, float, float]] = {
    "thin": (0.075, 0.009, 0.018, 1.0),
    "straight": (0.078, 0.014, 0.004, 1.1),
    "arched": (0.076, 0.012, 0.03, 1.2),
    "thick": (0.08, 0.02, 0.014, 1.2),
    "bushy": (0.085, 0.026, 0.01, 1.3),
}

# Nose tip ellipsoid radii (x, y, z) and height below the eye line.
NOSES: dict[str, tuple[tuple[float, float, float], float]] = {
    "button": ((0.04, 0.034, 0.04), 0.0),
    "straight": ((0.034, 0.06, 0.05), 0.01),
    "wide": ((0.058, 0.04, 0.045), 0.0),
    "long": ((0.034, 0.075, 0.062), 0.025),
    "pointed": ((0.03, 0.05, 0.07), 0.01),
}

# Lips: mouth half width, upper lip thickness, lower lip thickness.
LIPS: dict[str, tuple[float, float, float]] = {
    "thin": (0.13, 0.011, 0.014),
    "full": (0.13, 0.021, 0.028),
    "wide": (0.155, 0.015, 0.02),
    "small": (0.11, 0.017, 0.021),
}

# Ears: radii (x, y, z), raise of the centre, pointed tip.
EARS: dict[str, tuple[tuple[float, float, float], float, bool]] = {
    "small": ((0.045, 0.075, 0.055), 0.0, False),
    "round": ((0.055, 0.09, 0.065), 0.0, False),
    "large": ((0.065, 0.11, 0.075), 0.01, False),
    "pointed": ((0.05, 0.13, 0.06), 0.05, True),
}


@dataclass(frozen=True)
class Look:
    """Numbers for one character. Arrays are float32; nothing here changes per frame."""

    spec: CharacterSpec
    skull: tuple[float, float, float]  # head radii (x, y, z)
    jaw_width: float  # widening of the lower face (warp)
    chin_taper: float  # narrowing towards the chin (warp)
    head_centre: tuple[float, float]  # rest position of the head centre, world
    skin: np.ndarray  # (3,)
    skin_shadow: np.ndarray  # (3,) tint of shaded skin
    lip: np.ndarray
    hair: np.ndarray
    hair_dark: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    hair_shape: HairShape
    eye: tuple[float, float, float, float]  # half width, upper, lower, tilt
    eye_x: float  # distance of each eye centre from the face midline
    eye_y: float  # eye line height relative to the head centre
    brow_shape: tuple[float, float, float, float]
    nose_radii: tuple[float, float, float]
    nose_y: float  # nose tip height relative to the head centre
    mouth: tuple[float, float, float]  # half width, upper lip, lower lip
    mouth_y: float  # lip line height relative to the head centre
    ear_radii: tuple[float, float, float]
    ear_y: float
    ear_pointed: bool
    cloth: np.ndarray
    accent: np.ndarray
    hat: np.ndarray
    light: np.ndarray  # (3,) unit vector towards the key light, view space
    background: tuple[np.ndarray, np.ndarray]


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (a * (1.0 - t) + b * t).astype(F32)


@lru_cache(maxsize=256)
def look_for(spec: CharacterSpec) -> Look:
    (rx, ry, rz), jaw_width, chin_taper = FACE[spec.face_shape]
    skull = (rx * spec.head_width, ry * spec.head_height, rz)
    skin = _rgb(spec.skin_tone)
    hair = _rgb(spec.hair_color)
    # Brows are a dark shade of the hair (so they read over a fringe too); the bald get a skin-toned
    # dark brow.
    brow = _mix(hair, np.zeros(3, F32), 0.55) if spec.hair_style != "bald" else skin * 0.45
    angle = np.deg2rad(spec.light_angle)
    light = np.array([np.sin(angle) * 0.8, 0.45, np.cos(angle) * 0.8 + 0.2], dtype=np.float64)
    light /= np.linalg.norm(light)
    ew, eu, el, tilt = EYES[spec.eye_shape]
    s = spec.eye_size
    nose_radii, nose_drop = NOSES[spec.nose]
    mw, ul, ll = LIPS[spec.lips]
    ear_radii, ear_raise, pointed = EARS[spec.ears]
    return Look(
        spec=spec,
        skull=skull,
        jaw_width=jaw_width,
        chin_taper=chin_taper,
        head_centre=(0.0, 0.24),
        skin=skin,
        skin_shadow=_mix(skin * np.array([0.55, 0.42, 0.45], F32), skin, 0.2),
        lip=_mix(skin, np.array([0.72, 0.26, 0.30], F32), 0.45) * F32(0.92),
        hair=hair,
        hair_dark=(hair * np.array([0.55, 0.5, 0.5], F32)).astype(F32),
        brow=brow.astype(F32),
        iris=_rgb(spec.eye_color),
        hair_shape=HAIR[spec.hair_style],
        eye=(ew * s, eu * s, el * s, tilt),
        eye_x=0.14 * spec.eye_spacing * skull[0] / 0.36,
        eye_y=0.02,
        brow_shape=BROWS[spec.brows],
        nose_radii=nose_radii,
        nose_y=-0.1 - nose_drop,
        mouth=(mw * spec.mouth_width, ul, ll),
        mouth_y=-0.235 * spec.head_height,
        ear_radii=ear_radii,
        ear_y=-0.03 + ear_raise,
        ear_pointed=pointed,
        cloth=_rgb(spec.clothing_color),
        accent=_rgb(spec.clothing_accent),
        hat=_rgb(spec.hat_color),
        light=light.astype(F32),
        background=(_rgb(spec.background_colors[0]), _rgb(spec.background_colors[1])),
    )
