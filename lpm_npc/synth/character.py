"""Procedural character identities: a seed becomes a `CharacterSpec`.

A `CharacterSpec` is a frozen, hashable description of one stylised bust: face shape, skin tone,
hair style and colour, eye shape and colour, brows, nose, lips, ears, clothing style and colours,
accessories (glasses, hat, earrings), background and light direction, plus a few continuous
proportions. Every attribute is drawn independently from its own stream of one seeded generator, so
two seeds differ in many independent ways.

This module only describes identities; `synth/render.py` draws them. It draws no pixels and knows
nothing of motion.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass, fields

import numpy as np

RGB = tuple[float, float, float]

# Categorical identity attributes and the values each may take. The renderer maps every value to
# geometry; adding a value here needs a matching entry there.
FACE_SHAPES: tuple[str, ...] = ("round", "oval", "square", "heart", "long")
HAIR_STYLES: tuple[str, ...] = ("bald", "buzz", "crop", "side_part", "bob", "long", "curly", "bun")
EYE_SHAPES: tuple[str, ...] = ("round", "almond", "narrow", "droopy", "upturned")
BROW_STYLES: tuple[str, ...] = ("thin", "straight", "arched", "thick", "bushy")
NOSE_STYLES: tuple[str, ...] = ("button", "straight", "wide", "long", "pointed")
LIP_STYLES: tuple[str, ...] = ("thin", "full", "wide", "small")
EAR_STYLES: tuple[str, ...] = ("small", "round", "large", "pointed")
CLOTHING_STYLES: tuple[str, ...] = ("tshirt", "vneck", "collar", "hoodie", "turtleneck", "jacket")
GLASSES: tuple[str, ...] = ("none", "round", "square", "sun")
HATS: tuple[str, ...] = ("none", "beanie", "brim", "cap")
EARRINGS: tuple[str, ...] = ("none", "stud", "hoop")
BACKGROUNDS: tuple[str, ...] = ("gradient", "studio", "stripes", "window", "dots")

SKIN_TONES: tuple[RGB, ...] = (
    (0.98, 0.86, 0.76),
    (0.95, 0.79, 0.66),
    (0.89, 0.71, 0.56),
    (0.80, 0.60, 0.44),
    (0.68, 0.48, 0.33),
    (0.56, 0.38, 0.26),
    (0.43, 0.29, 0.20),
    (0.33, 0.22, 0.16),
)
HAIR_COLORS: tuple[RGB, ...] = (
    (0.08, 0.07, 0.07),  # black
    (0.22, 0.14, 0.09),  # dark brown
    (0.42, 0.27, 0.15),  # brown
    (0.55, 0.22, 0.10),  # auburn
    (0.82, 0.44, 0.16),  # ginger
    (0.90, 0.76, 0.45),  # blonde
    (0.93, 0.90, 0.80),  # platinum
    (0.62, 0.62, 0.64),  # grey
    (0.22, 0.36, 0.78),  # dyed blue
    (0.88, 0.42, 0.64),  # dyed pink
    (0.22, 0.58, 0.44),  # dyed green
)
EYE_COLORS: tuple[RGB, ...] = (
    (0.36, 0.21, 0.10),  # brown
    (0.16, 0.10, 0.07),  # dark brown
    (0.52, 0.42, 0.18),  # hazel
    (0.24, 0.52, 0.30),  # green
    (0.24, 0.46, 0.80),  # blue
    (0.50, 0.57, 0.62),  # grey
    (0.78, 0.52, 0.14),  # amber
)


@dataclass(frozen=True)
class CharacterSpec:
    """One character identity. Frozen and hashable so renderers can cache per-character layers."""

    seed: int  # the seed it was drawn from (-1 when built by hand)
    face_shape: str  # one of FACE_SHAPES
    skin_tone: RGB  # linear-ish sRGB in [0, 1]
    hair_style: str  # one of HAIR_STYLES
    hair_color: RGB  # sRGB in [0, 1]
    eye_shape: str  # one of EYE_SHAPES
    eye_color: RGB  # iris colour, sRGB in [0, 1]
    brows: str  # one of BROW_STYLES
    nose: str  # one of NOSE_STYLES
    lips: str  # one of LIP_STYLES
    ears: str  # one of EAR_STYLES
    clothing_style: str  # one of CLOTHING_STYLES
    clothing_color: RGB  # main garment colour
    clothing_accent: RGB  # collar / lapel / hood / trim colour
    glasses: str  # one of GLASSES
    hat: str  # one of HATS
    hat_color: RGB  # hat colour (unused when hat == "none")
    earrings: str  # one of EARRINGS
    background: str  # one of BACKGROUNDS
    background_colors: tuple[RGB, RGB]  # two scene colours
    light_angle: float  # key light direction, degrees: -70 (from viewer's left) .. +70 (right)
    head_width: float  # multiplier on the head's width, 0.92 .. 1.08
    head_height: float  # multiplier on the head's height, 0.94 .. 1.06
    eye_spacing: float  # multiplier on the distance between the eyes, 0.9 .. 1.1
    eye_size: float  # multiplier on eye size, 0.88 .. 1.12
    mouth_width: float  # multiplier on mouth width, 0.88 .. 1.12
    blush: float  # cheek blush strength, 0 .. 0.5

    def __post_init__(self) -> None:
        choices = {
            "face_shape": FACE_SHAPES,
            "hair_style": HAIR_STYLES,
            "eye_shape": EYE_SHAPES,
            "brows": BROW_STYLES,
            "nose": NOSE_STYLES,
            "lips": LIP_STYLES,
            "ears": EAR_STYLES,
            "clothing_style": CLOTHING_STYLES,
            "glasses": GLASSES,
            "hat": HATS,
            "earrings": EARRINGS,
            "background": BACKGROUNDS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"CharacterSpec.{name} = {getattr(self, name)!r}; allowed: {', '.join(allowed)}"
                )
        if not -90.0 <= self.light_angle <= 90.0:
            raise ValueError(f"CharacterSpec.light_angle = {self.light_angle}; allowed -90..90")

    @classmethod
    def from_seed(cls, seed: int) -> CharacterSpec:
        """Draw a character. Deterministic: the same seed always gives the same spec."""
        if seed < 0:
            raise ValueError(f"seed = {seed}; allowed: 0 .. 2**63-1")
        # One child stream per attribute: adding an attribute later does not reshuffle the others.
        streams = np.random.SeedSequence(seed).spawn(32)
        rngs = [np.random.default_rng(s) for s in streams]

        def pick(i: int, options: tuple, p: list[float] | None = None):
            return options[int(rngs[i].choice(len(options), p=p))]

        def jitter(i: int, colour: RGB, amount: float = 0.03) -> RGB:
            noise = rngs[i].uniform(-amount, amount, 3)
            return tuple(float(np.clip(c + n, 0.0, 1.0)) for c, n in zip(colour, noise))

        def hsv(i: int, sat: tuple[float, float], val: tuple[float, float]) -> RGB:
            h = rngs[i].uniform(0.0, 1.0)
            s = rngs[i].uniform(*sat)
            v = rngs[i].uniform(*val)
            return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))

        hat = pick(14, HATS, [0.7, 0.1, 0.1, 0.1])
        return cls(
            seed=int(seed),
            face_shape=pick(0, FACE_SHAPES),
            skin_tone=jitter(1, pick(1, SKIN_TONES), 0.025),
            hair_style=pick(2, HAIR_STYLES),
            hair_color=jitter(3, pick(3, HAIR_COLORS), 0.03),
            eye_shape=pick(4, EYE_SHAPES),
            eye_color=jitter(5, pick(5, EYE_COLORS), 0.03),
            brows=pick(6, BROW_STYLES),
            nose=pick(7, NOSE_STYLES),
            lips=pick(8, LIP_STYLES),
            ears=pick(9, EAR_STYLES),
            clothing_style=pick(10, CLOTHING_STYLES),
            clothing_color=hsv(11, (0.35, 0.85), (0.30, 0.85)),
            clothing_accent=hsv(12, (0.1, 0.7), (0.15, 0.95)),
            glasses=pick(13, GLASSES, [0.6, 0.15, 0.15, 0.10]),
            hat=hat,
            hat_color=hsv(15, (0.3, 0.9), (0.2, 0.8)),
            earrings=pick(16, EARRINGS, [0.6, 0.2, 0.2]),
            background=pick(17, BACKGROUNDS),
            background_colors=(hsv(18, (0.1, 0.5), (0.55, 0.9)), hsv(19, (0.1, 0.6), (0.2, 0.6))),
            light_angle=float(rngs[20].uniform(-70.0, 70.0)),
            head_width=float(rngs[21].uniform(0.92, 1.08)),
            head_height=float(rngs[22].uniform(0.94, 1.06)),
            eye_spacing=float(rngs[23].uniform(0.9, 1.1)),
            eye_size=float(rngs[24].uniform(0.88, 1.12)),
            mouth_width=float(rngs[25].uniform(0.88, 1.12)),
            blush=float(rngs[26].uniform(0.0, 0.5)),
        )

    @property
    def accessories(self) -> tuple[str, ...]:
        """The accessories worn, e.g. ("glasses:round", "hat:beanie")."""
        worn = (("glasses", self.glasses), ("hat", self.hat), ("earrings", self.earrings))
        return tuple(f"{kind}:{value}" for kind, value in worn if value != "none")

    def identity_attributes(self) -> dict[str, object]:
        """The independent identity attributes (everything but the seed), for summaries and tests."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seed"}

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly dict of every field."""
        return asdict(self)
