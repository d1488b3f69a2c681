"""How far to trust the judge: its read-back on held-out characters' truth renders and their VAE
round-trips (`lpm-npc judge --calibrate`).

Cases: `n_characters` held-out characters (`synth.dataset.held_out_character_seeds`, never drawn by
training), one directed conversation each (`seconds` long, the director's random prompt for that
seed), rendered at the model's size; the same frames round-tripped through the checkpoint's VAE
(`judge.roundtrip`, the VAE from `model.vae.load_frozen_vae`).
- Per channel (`CHANNELS`): `truth_r` = the Pearson correlation, within each conversation, between
  the judge's reading of the truth frames and the motion truth, averaged over the conversations in
  which the truth channel moves and the renderer draws it (`judge.visibility`: not behind
  sunglasses, a hat brim or hair); None when there is none. `vae_r` the same on the VAE frames.
  `truth_r_all` / `vae_r_all` average over every conversation in which the channel moves, hidden
  or not; `scored` counts the conversations behind `truth_r`, `hidden` lists the character seeds
  left out as hidden. Within-conversation correlation is what the bench relies on (lip-sync per
  session, events against a running median), so a per-character bias does not count and cannot
  inflate r.
- Expression: for each character and prompt word of `text_prompts` a `text_seconds` clip directed
  with that prompt; correct when the prompted expression (`prompted_expression`) has the highest
  mean probability among the prompted expressions (`expression_accuracy`, the bench's
  `text_control_acc` on truth); chance = 1 / len(text_prompts).
`GOALS` holds the targets of issue 8 (each channel's truth_r, expression accuracy, and the VAE
read-back within `VAE_TOLERANCE` of the truth read-back); `goals_met` reports them on the visible
conversations (`truth_r`, `vae_r`).
This module trains nothing and writes no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lpm_npc.synth.motion import EXPRESSIONS, Motion

CHANNELS: tuple[str, ...] = (
    "jaw_open",
    "head_pitch",
    "head_yaw",
    "blink",
    "brow_raise",
    "head_roll",
    "lip_round",
    "lip_spread",
    "gaze_x",
    "gaze_y",
)
GOALS: dict[str, float] = {
    "jaw_open": 0.9,
    "head_pitch": 0.8,
    "head_yaw": 0.8,
    "blink": 0.8,
    "brow_raise": 0.8,
}
EXPRESSION_GOAL = 0.9
VAE_TOLERANCE = 0.05  # the VAE read-back may be at most this far below the truth read-back
DEFAULT_PROMPTS: tuple[str, ...] = ("cheerful", "sad", "angry", "surprised", "skeptical")
_MIN_TRUTH_SD = 1e-3  # a channel that moves less than this within a conversation is not scored


def prompted_expression(prompt: str) -> str:
    """The dominant non-neutral expression a prompt word asks the director for."""
    from lpm_npc.synth.prompts import parse_prompt

    weights = np.asarray(parse_prompt(prompt).expression, np.float32)
    return EXPRESSIONS[1 + int(np.argmax(weights[1:]))]


def expression_hits(clip_probs: list[np.ndarray], prompts: tuple[str, ...]) -> list[bool]:
    """Per clip: does its prompted expression win among the prompted expressions?

    clip_probs[k]: (T, len(EXPRESSIONS)) judge probabilities of clip k, directed with prompt
    `prompts[k % len(prompts)]`.
    """
    if not clip_probs:
        raise ValueError("clip_probs must hold at least one clip")
    columns = [EXPRESSIONS.index(prompted_expression(p)) for p in prompts]
    return [
        int(np.argmax(np.asarray(probs).mean(axis=0)[columns])) == k % len(prompts)
        for k, probs in enumerate(clip_probs)
    ]


def expression_accuracy(clip_probs: list[np.ndarray], prompts: tuple[str, ...]) -> float:
    """Share of clips whose prompted expression wins among the prompted expressions."""
    return float(np.mean(expression_hits(clip_probs, prompts)))


def accuracy_per_prompt(clip_probs: list[np.ndarray], prompts: tuple[str, ...]) -> dict[str, float]:
    """`expression_accuracy` of each prompt's clips (which expressions the judge confuses)."""
    hits = expression_hits(clip_probs, prompts)
    return {
        p: round(float(np.mean(hits[i :: len(prompts)])), 4)
        for i, p in enumerate(prompts)
        if hits[i :: len(prompts)]
    }


def truth_channel(motion: Motion, name: str) -> np.ndarray:
    """The motion truth of a reported channel (`blink` = mean of both eyes)."""
    from lpm_npc.judge.visibility import motion_channels

    return np.mean([getattr(motion, f) for f in motion_channels(name)], axis=0)


def moves(motion: Motion, name: str) -> bool:
    """Does the channel's truth move within this conversation (is it scored at all)?"""
    return float(np.std(truth_channel(motion, name))) > _MIN_TRUTH_SD


def read_channel(reading, name: str) -> np.ndarray:
    """The judge's reading of a channel (`JudgeReading` field or scalar)."""
    return getattr(reading, name) if hasattr(reading, name) else reading.scalars[name]


def channel_correlations(
    readings: list, motions: list[Motion], visible: list[dict[str, bool]] | None = None
) -> dict[str, float | None]:
    """Mean within-conversation Pearson r per channel over the conversations in which the truth
    moves and (when `visible` is given, one dict per conversation) the channel is visible; None
    when there is none."""
    from lpm_npc.bench.quality_metrics import pearson

    out: dict[str, float | None] = {}
    for name in CHANNELS:
        values = [
            pearson(read_channel(r, name), truth_channel(m, name))
            for k, (r, m) in enumerate(zip(readings, motions, strict=True))
            if moves(m, name) and (visible is None or visible[k][name])
        ]
        out[name] = round(float(np.mean(values)), 4) if values else None
    return out


@dataclass(frozen=True)
class CalibrationCase:
    """One held-out conversation: its motion truth and frames (truth and through the VAE)."""

    character_seed: int
    prompt: str
    motion: Motion
    truth: np.ndarray  # (T, S, S, 3) uint8
    vae: np.ndarray | None  # (T, S, S, 3) uint8, None without a VAE
    visibility: dict[str, float]  # per channel, `judge.visibility.channel_visibility`


def calibrate(
    judge,
    vae,
    size: int,
    *,
    n_characters: int = 6,
    seconds: float = 12.0,
    text_prompts: tuple[str, ...] = DEFAULT_PROMPTS,
    text_seconds: float = 3.0,
    seed_offset: int = 0,
) -> dict:
    """Measure `judge` (a `judge.reader.Judge`) as the module docstring says; `vae` may be None
    (then every `vae_r` and `vae_acc` is None). Returns a JSON-ready dict."""
    from lpm_npc.judge.roundtrip import round_trip_frames
    from lpm_npc.judge.visibility import VISIBLE_MIN_PX, channel_visibility
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.render import render_frames

    if n_characters < 1:
        raise ValueError(f"n_characters must be >= 1, got {n_characters}")
    if not text_prompts:
        raise ValueError("text_prompts must not be empty")
    seeds = held_out_character_seeds(n_characters, start=HELD_OUT_SEED_START + seed_offset)
    cases, text_truth, text_vae = [], [], []
    for seed in seeds:
        spec = CharacterSpec.from_seed(seed)
        conv = direct_conversation(seed + 31, seconds, spec=spec)
        frames = render_frames(spec, conv.motion, size)
        cases.append(
            CalibrationCase(
                seed,
                conv.script.prompt,
                conv.motion,
                frames,
                round_trip_frames(vae, frames) if vae is not None else None,
                {n: round(channel_visibility(spec, conv.motion, n, size), 2) for n in CHANNELS},
            )
        )
        for prompt in text_prompts:
            clip = direct_conversation(seed + 11, text_seconds, prompt=prompt, spec=spec)
            clip_frames = render_frames(spec, clip.motion, size)
            text_truth.append(judge.read(clip_frames).expression_probs)
            if vae is not None:
                text_vae.append(judge.read(round_trip_frames(vae, clip_frames)).expression_probs)
    motions = [c.motion for c in cases]
    visible = [{n: v >= VISIBLE_MIN_PX for n, v in c.visibility.items()} for c in cases]
    truth_reads = [judge.read(c.truth) for c in cases]
    vae_reads = [judge.read(c.vae) for c in cases] if vae is not None else None
    truth_r = channel_correlations(truth_reads, motions, visible)
    truth_all = channel_correlations(truth_reads, motions)
    none = dict.fromkeys(CHANNELS)
    vae_r = channel_correlations(vae_reads, motions, visible) if vae_reads else none
    vae_all = channel_correlations(vae_reads, motions) if vae_reads else none
    channels = {}
    for name in CHANNELS:
        moving = [moves(m, name) for m in motions]
        channels[name] = {
            "truth_r": truth_r[name],
            "vae_r": vae_r[name],
            "truth_r_all": truth_all[name],
            "vae_r_all": vae_all[name],
            "scored": sum(m and v[name] for m, v in zip(moving, visible, strict=True)),
            "hidden": [
                c.character_seed
                for c, m, v in zip(cases, moving, visible, strict=True)
                if m and not v[name]
            ],
        }
    truth_acc = expression_accuracy(text_truth, text_prompts)
    vae_acc = expression_accuracy(text_vae, text_prompts) if vae is not None else None
    return {
        "channels": channels,
        "expression": {
            "truth_acc": truth_acc,
            "vae_acc": vae_acc,
            "truth_acc_per_prompt": accuracy_per_prompt(text_truth, text_prompts),
        },
        "goals_met": goals_met(channels, truth_acc, vae_acc),
        "cases": [
            {
                "character_seed": c.character_seed,
                "prompt": c.prompt,
                "frames": len(c.truth),
                "visibility_px": c.visibility,
            }
            for c in cases
        ],
        "text_prompts": list(text_prompts),
        "seconds": seconds,
        "text_seconds": text_seconds,
        "visible_min_px": VISIBLE_MIN_PX,
    }


def goals_met(
    channels: dict[str, dict[str, float | None]], truth_acc: float, vae_acc: float | None
) -> dict[str, bool]:
    """Each goal of `GOALS` (truth_r >= goal), the expression goal, and per goal channel whether
    the VAE read-back is within VAE_TOLERANCE of the truth read-back (False when unmeasured)."""

    def at_least(value: float | None, goal: float) -> bool:
        return value is not None and not math.isnan(value) and value >= goal

    met = {name: at_least(channels[name]["truth_r"], goal) for name, goal in GOALS.items()}
    met["expression"] = at_least(truth_acc, EXPRESSION_GOAL)
    for name in GOALS:
        truth, through = channels[name]["truth_r"], channels[name]["vae_r"]
        met[f"{name}_vae"] = truth is not None and at_least(through, truth - VAE_TOLERANCE)
    met["expression_vae"] = at_least(vae_acc, truth_acc - VAE_TOLERANCE)
    return met
