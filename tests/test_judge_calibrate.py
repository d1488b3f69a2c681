"""Judge calibration: correlation and accuracy definitions, goals, and the VAE round trip."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.judge.calibrate import (
    CHANNELS,
    channel_correlations,
    expression_accuracy,
    goals_met,
    prompted_expression,
    truth_channel,
)
from lpm_npc.judge.roundtrip import round_trip_frames
from lpm_npc.synth.motion import EXPRESSIONS, Motion


def _motion(n: int, seed: int) -> Motion:
    rng = np.random.default_rng(seed)
    motion = Motion.neutral(n)
    for name in ("jaw_open", "blink_left", "blink_right", "brow_raise", "head_pitch"):
        setattr(motion, name, rng.random(n).astype(np.float32))
    return motion


def _reading(motion: Motion, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    fields = {
        n: truth_channel(motion, n) + noise * rng.standard_normal(motion.n_frames) for n in CHANNELS
    }
    return types.SimpleNamespace(**fields, scalars={})


def test_correlations_are_within_conversation_and_skip_still_channels():
    motions = [_motion(100, 0), _motion(100, 1)]
    perfect = channel_correlations([_reading(m, 0.0, i) for i, m in enumerate(motions)], motions)
    assert perfect["jaw_open"] == pytest.approx(1.0) and perfect["blink"] == pytest.approx(1.0)
    assert perfect["head_yaw"] is None  # never moves in these conversations: not scored
    noisy = channel_correlations([_reading(m, 0.5, i) for i, m in enumerate(motions)], motions)
    assert 0.2 < noisy["jaw_open"] < 0.8
    # A per-conversation offset does not count: r is computed inside each conversation.
    shifted = [_reading(m, 0.0, i) for i, m in enumerate(motions)]
    shifted[1].jaw_open = shifted[1].jaw_open + 5.0
    assert channel_correlations(shifted, motions)["jaw_open"] == pytest.approx(1.0)


def test_expression_accuracy_and_goals():
    prompts = ("cheerful", "sad")
    assert prompted_expression("cheerful") == "smile" and prompted_expression("sad") == "sad"
    smile, sad = EXPRESSIONS.index("smile"), EXPRESSIONS.index("sad")
    right = [np.eye(len(EXPRESSIONS))[[smile] * 3], np.eye(len(EXPRESSIONS))[[sad] * 3]]
    assert expression_accuracy(right, prompts) == 1.0
    assert expression_accuracy(right[::-1], prompts) == 0.0
    channels = {n: {"truth_r": 0.95, "vae_r": 0.92} for n in CHANNELS}
    met = goals_met(channels, 0.95, 0.93)
    assert all(met.values())
    channels["blink"] = {"truth_r": 0.85, "vae_r": 0.7}
    channels["brow_raise"] = {"truth_r": None, "vae_r": None}
    met = goals_met(channels, 0.8, None)
    assert met["blink"] and not met["blink_vae"] and not met["brow_raise"]
    assert not met["expression"] and not met["expression_vae"] and met["jaw_open_vae"]


def test_round_trip_keeps_shape_for_any_length():
    from lpm_npc.model.vae import VideoVAE

    cfg = ModelConfig.from_name("tiny").with_overrides(
        image_size=32, vae_channels=(8, 8, 8, 8), latent_channels=4
    )
    torch.manual_seed(0)
    vae = VideoVAE(cfg).eval().requires_grad_(False)
    frames = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    out = round_trip_frames(vae, frames, segment_frames=8)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames)
    with pytest.raises(ValueError, match="segment_frames"):
        round_trip_frames(vae, frames, segment_frames=6)
    with pytest.raises(ValueError, match="uint8"):
        round_trip_frames(vae, frames.astype(np.float32))


def test_visibility_is_the_renderers_answer():
    """Sunglasses hide a blink (and the gaze) that the same face shows without them; the jaw and
    the head stay visible behind them."""
    import dataclasses

    from lpm_npc.judge.visibility import VISIBLE_MIN_PX, channel_visibility
    from lpm_npc.synth.character import CharacterSpec

    motion = Motion.neutral(12)
    motion.blink_left[::3] = 1.0
    motion.blink_right[::3] = 1.0
    face = CharacterSpec.from_seed(4)
    clear = dataclasses.replace(face, glasses="none", hat="none")
    shaded = dataclasses.replace(face, glasses="sun")
    assert channel_visibility(clear, motion, "blink", 64, frames=12) > VISIBLE_MIN_PX
    assert channel_visibility(shaded, motion, "blink", 64, frames=12) < VISIBLE_MIN_PX
    assert channel_visibility(shaded, motion, "jaw_open", 64, frames=12) > VISIBLE_MIN_PX
    assert channel_visibility(shaded, motion, "gaze_x", 64) < VISIBLE_MIN_PX
    assert channel_visibility(clear, motion, "gaze_x", 64) > VISIBLE_MIN_PX
    assert channel_visibility(shaded, motion, "head_yaw", 64) > VISIBLE_MIN_PX
    with pytest.raises(ValueError, match="frames"):
        channel_visibility(clear, motion, "blink", 64, frames=0)


def test_hidden_conversations_are_reported_not_scored():
    motions = [_motion(100, 0), _motion(100, 1)]
    readings = [_reading(m, 0.0, i) for i, m in enumerate(motions)]
    readings[1].blink = -readings[1].blink  # a reader that fails on the second conversation
    visible = [dict.fromkeys(CHANNELS, True), {**dict.fromkeys(CHANNELS, True), "blink": False}]
    assert channel_correlations(readings, motions)["blink"] == pytest.approx(0.0, abs=1e-6)
    assert channel_correlations(readings, motions, visible)["blink"] == pytest.approx(1.0)
    hidden_everywhere = [{**v, "blink": False} for v in visible]
    assert channel_correlations(readings, motions, hidden_everywhere)["blink"] is None


def test_accuracy_per_prompt_names_the_confused_prompt():
    from lpm_npc.judge.calibrate import accuracy_per_prompt

    prompts = ("cheerful", "sad")
    smile, sad = EXPRESSIONS.index("smile"), EXPRESSIONS.index("sad")
    eye = np.eye(len(EXPRESSIONS))
    # Two characters: every cheerful clip read right, the second sad clip read as a smile.
    clips = [eye[[smile] * 3], eye[[sad] * 3], eye[[smile] * 3], eye[[smile] * 3]]
    assert accuracy_per_prompt(clips, prompts) == {"cheerful": 1.0, "sad": 0.5}
    assert expression_accuracy(clips, prompts) == 0.75
