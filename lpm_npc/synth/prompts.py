"""The director's prompt vocabulary: words that set a conversation's emotion and style.

`parse_prompt(text)` turns free text into a `Style`: every known word (see `PROMPT_WORDS`) adds its
expression weights and biases and multiplies the motion gains; unknown words are ignored, so
"a cheerful, slightly nervous baker" reads as cheerful + nervous. Each word has a visible effect on
the motion (documented per entry). This module only maps words to numbers; the director applies
them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from lpm_npc.synth.motion import EXPRESSIONS


@dataclass(frozen=True)
class Style:
    """How a conversation is performed. Additive biases start at 0, multiplicative gains at 1."""

    words: tuple[str, ...] = ()  # the known prompt words that made this style, in order
    expression: tuple[float, ...] = field(
        default_factory=lambda: (0.0,) * len(EXPRESSIONS)
    )  # weight per EXPRESSIONS entry (neutral is filled in as 1 - the rest)
    motion_gain: float = 1.0  # head drift, beat gestures and torso sway amplitude
    jaw_gain: float = 1.0  # lip-sync amplitude (visemes are multiplied by this)
    nod_gain: float = 1.0  # listening nod amplitude
    blink_rate: float = 1.0  # blink frequency multiplier
    gaze_wander: float = 1.0  # amplitude and frequency of gaze shifts
    head_pitch_deg: float = 0.0  # constant head pitch, + = looks down
    head_roll_deg: float = 0.0  # constant head tilt
    head_yaw_deg: float = 0.0  # constant head turn
    gaze_x: float = 0.0  # constant gaze offset, + = viewer's right
    gaze_y: float = 0.0  # constant gaze offset, + = up
    brow_raise: float = 0.0  # constant brow raise
    brow_furrow: float = 0.0  # constant brow furrow
    lid_droop: float = 0.0  # constant partial eyelid closure (bored, sad)
    laugh_bursts: float = 0.0  # laugh pulses per second while speaking or after the player's turn
    speech_rate: float = 1.0  # NPC syllable-rate multiplier
    speech_pitch: float = 1.0  # NPC pitch multiplier
    breath_rate: float = 1.0  # breathing frequency multiplier

    def expression_weights(self) -> np.ndarray:
        """(len(EXPRESSIONS),) float32 weights with neutral = 1 - sum(others), clipped to [0, 1]."""
        w = np.clip(np.asarray(self.expression, np.float32), 0.0, 1.0)
        w[0] = max(0.0, 1.0 - float(w[1:].sum()))
        return w


def _expr(**weights: float) -> tuple[float, ...]:
    return tuple(float(weights.get(name, 0.0)) for name in EXPRESSIONS)


# Word -> changes it makes. Additive fields add; gains and rates multiply.
PROMPT_WORDS: dict[str, Style] = {
    # smiles, livelier head, slightly higher voice
    "cheerful": Style(expression=_expr(smile=0.65), motion_gain=1.25, brow_raise=0.1,
                      speech_pitch=1.08),
    # sad face, head down, gaze down, slow small motion, heavy lids
    "sad": Style(expression=_expr(sad=0.7), motion_gain=0.6, head_pitch_deg=7.0, gaze_y=-0.35,
                 jaw_gain=0.8, speech_rate=0.85, speech_pitch=0.92, lid_droop=0.2,
                 breath_rate=0.8),
    # angry face, furrowed brows, bigger gestures and mouth, fixed stare
    "angry": Style(expression=_expr(angry=0.75), brow_furrow=0.6, motion_gain=1.35,
                   jaw_gain=1.2, gaze_wander=0.4, blink_rate=0.7, speech_rate=1.1),
    # surprised face, raised brows, head back, few blinks
    "surprised": Style(expression=_expr(surprised=0.7), brow_raise=0.5, head_pitch_deg=-4.0,
                       blink_rate=0.5, jaw_gain=1.1, speech_pitch=1.1),
    # skeptical face, head tilted, one-sided glance, slight furrow
    "skeptical": Style(expression=_expr(skeptical=0.7), head_roll_deg=8.0, gaze_x=0.25,
                       brow_furrow=0.25, motion_gain=0.85),
    # small slow motion, slow blinks and breathing
    "calm": Style(motion_gain=0.45, blink_rate=0.7, gaze_wander=0.6, breath_rate=0.75,
                  speech_rate=0.9, nod_gain=0.7),
    # large fast motion, bigger mouth, faster speech and blinks
    "energetic": Style(motion_gain=1.9, jaw_gain=1.2, nod_gain=1.4, blink_rate=1.2,
                       speech_rate=1.2, breath_rate=1.3, gaze_wander=1.3),
    # averted gaze down and aside, head down and tilted, small shy smile
    "shy": Style(expression=_expr(smile=0.2), gaze_x=-0.35, gaze_y=-0.4, head_pitch_deg=5.0,
                 head_roll_deg=-4.0, motion_gain=0.7, jaw_gain=0.8, speech_pitch=1.05),
    # laugh pulses with the head thrown back, smiling in between
    "laughing": Style(expression=_expr(smile=0.45), laugh_bursts=0.35, motion_gain=1.2),
    # drooping lids, head tilted, wandering gaze, little motion
    "bored": Style(lid_droop=0.35, head_roll_deg=-6.0, gaze_wander=1.5, motion_gain=0.4,
                   nod_gain=0.4, speech_rate=0.85, blink_rate=0.8),
    # many blinks, darting gaze, raised brows, quick breathing
    "nervous": Style(blink_rate=2.2, gaze_wander=2.2, brow_raise=0.2, motion_gain=1.15,
                     breath_rate=1.5, speech_rate=1.15),
    # head turned and tilted, raised brows, bigger nods
    "curious": Style(head_yaw_deg=10.0, head_roll_deg=6.0, brow_raise=0.3, nod_gain=1.3,
                     gaze_wander=0.8),
}  # fmt: skip

_ADDITIVE = (
    "head_pitch_deg", "head_roll_deg", "head_yaw_deg", "gaze_x", "gaze_y", "brow_raise",
    "brow_furrow", "lid_droop", "laugh_bursts",
)  # fmt: skip
_MULTIPLICATIVE = (
    "motion_gain", "jaw_gain", "nod_gain", "blink_rate", "gaze_wander", "speech_rate",
    "speech_pitch", "breath_rate",
)  # fmt: skip


def prompt_tokens(text: str) -> list[str]:
    """Lower-case word tokens of a prompt."""
    return re.findall(r"[a-z]+", text.lower())


def parse_prompt(text: str) -> Style:
    """Combine the known words of `text` into a Style; unknown words are ignored."""
    if not isinstance(text, str):
        raise ValueError(f"prompt must be a string, got {type(text).__name__}")
    style = Style()
    for word in prompt_tokens(text):
        if word not in PROMPT_WORDS or word in style.words:
            continue
        delta = PROMPT_WORDS[word]
        changes: dict = {name: getattr(style, name) + getattr(delta, name) for name in _ADDITIVE}
        changes.update(
            {name: getattr(style, name) * getattr(delta, name) for name in _MULTIPLICATIVE}
        )
        changes["expression"] = tuple(
            a + b for a, b in zip(style.expression, delta.expression, strict=True)
        )
        changes["words"] = (*style.words, word)
        style = replace(style, **changes)
    return style


def random_prompt(rng: np.random.Generator) -> str:
    """One or two prompt words drawn from `rng` (the director's prompt when none is given)."""
    words = sorted(PROMPT_WORDS)
    count = 1 + int(rng.random() < 0.4)
    picked = rng.choice(len(words), size=count, replace=False)
    return " ".join(words[int(i)] for i in picked)
