"""Conversation director: alignment, determinism, listening behaviour and prompt effects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.director import SPEAKERS, direct_conversation, voice_for_character
from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES
from lpm_npc.synth.prompts import PROMPT_WORDS, Style, parse_prompt


def _state(conv, speaker: str) -> np.ndarray:
    mask = np.zeros(conv.motion.n_frames, bool)
    for turn in conv.script.turns:
        if turn.speaker == speaker:
            mask[int(turn.start_s * FPS) : int(turn.end_s * FPS)] = True
    return mask


def _blink_onsets(blink: np.ndarray) -> np.ndarray:
    closed = blink > 0.8
    return np.flatnonzero(closed[1:] & ~closed[:-1]) + 1


@pytest.mark.parametrize("seconds", [0.5, 3.0, 7.31])
def test_tracks_and_motion_are_aligned(seconds):
    conv = direct_conversation(4, seconds)
    n = int(round(seconds * SAMPLE_RATE)) // SAMPLES_PER_FRAME
    assert conv.motion.n_frames == n
    assert conv.speak.shape == conv.listen.shape == (n * SAMPLES_PER_FRAME,)
    assert conv.speak.dtype == conv.listen.dtype == np.float32
    for name, arr in conv.motion.to_arrays().items():
        assert arr.shape[0] == n and np.all(np.isfinite(arr)), name
        if name in SCALAR_RANGES:
            lo, hi = SCALAR_RANGES[name]
            assert lo <= arr.min() and arr.max() <= hi, name
    assert conv.motion.expression.shape == (n, len(EXPRESSIONS))
    turns = conv.script.turns
    assert turns[0].start_s == 0.0 and abs(turns[-1].end_s - n * SAMPLES_PER_FRAME / 16000) < 1e-6
    assert all(t.speaker in SPEAKERS and t.end_s > t.start_s for t in turns)


def test_deterministic_from_seed():
    a = direct_conversation(9, 6.0)
    b = direct_conversation(9, 6.0)
    c = direct_conversation(10, 6.0)
    assert np.array_equal(a.speak, b.speak) and np.array_equal(a.listen, b.listen)
    for name, arr in a.motion.to_arrays().items():
        assert np.array_equal(arr, b.motion.to_arrays()[name]), name
    assert a.script == b.script
    assert not np.array_equal(a.motion.head_yaw, c.motion.head_yaw)
    assert a.script.prompt and set(a.script.prompt.split()) <= set(PROMPT_WORDS)


def test_tracks_follow_turns_and_lips_follow_speak_track():
    conv = direct_conversation(2, 40.0, prompt="")
    npc, player = _state(conv, "npc"), _state(conv, "player")
    assert npc.any() and player.any() and _state(conv, "silence").any()
    rms = lambda x: np.sqrt((x.reshape(-1, SAMPLES_PER_FRAME) ** 2).mean(1))  # noqa: E731
    speak_rms, listen_rms = rms(conv.speak), rms(conv.listen)
    assert speak_rms[npc].mean() > 20 * speak_rms[~npc].mean()
    assert listen_rms[player].mean() > 20 * listen_rms[~player].mean()
    jaw = conv.motion.jaw_open
    assert np.corrcoef(jaw, speak_rms)[0, 1] > 0.7
    assert jaw[player & ~npc].mean() < 0.05 < jaw[npc].mean()
    assert conv.script.npc_voice != conv.script.player_voice


def test_nods_cluster_after_player_phrase_ends():
    near_rate, far_rate = [], []
    for seed in range(3):
        conv = direct_conversation(seed, 60.0, prompt="")
        pitch = conv.motion.head_pitch
        fast = pitch - gaussian_filter1d(pitch, 12)
        peaks = np.flatnonzero(
            (fast[1:-1] > 3.0) & (fast[1:-1] >= fast[:-2]) & (fast[1:-1] > fast[2:])
        ) + 1  # fmt: skip
        ends = [round(p.time_s * FPS) for p in conv.script.phrase_ends if p.speaker == "player"]
        assert ends
        near = np.zeros(len(pitch), bool)
        for e in ends:
            near[e : e + 15] = True
        near_rate.append(near[peaks].sum() / near.sum())
        far_rate.append((~near[peaks]).sum() / (~near).sum())
    assert np.mean(near_rate) > 5 * np.mean(far_rate) + 0.01, (near_rate, far_rate)


def test_blinks_more_often_while_listening():
    listen_blinks = speak_blinks = listen_frames = speak_frames = 0
    for seed in range(3):
        conv = direct_conversation(seed, 60.0, prompt="")
        onsets = _blink_onsets(conv.motion.blink_left)
        npc, player = _state(conv, "npc"), _state(conv, "player") & ~_state(conv, "npc")
        listen_blinks += player[onsets].sum()
        speak_blinks += npc[onsets].sum()
        listen_frames += player.sum()
        speak_frames += npc.sum()
    assert listen_blinks / listen_frames > 1.5 * speak_blinks / speak_frames


def test_brows_rise_after_rising_phrases_and_gaze_holds_while_listening():
    after_rise, after_fall = [], []
    gaze_listen, gaze_idle = [], []
    for seed in range(3):
        conv = direct_conversation(seed, 60.0, prompt="")
        brow = conv.motion.brow_raise
        for p in conv.script.phrase_ends:
            if p.speaker == "player":
                f = round(p.time_s * FPS)
                (after_rise if p.rising else after_fall).append(brow[f : f + 15].max())
        player = _state(conv, "player") & ~_state(conv, "npc")
        gaze_listen.append(np.abs(conv.motion.gaze_x[player]).mean())
        gaze_idle.append(np.abs(conv.motion.gaze_x[_state(conv, "silence")]).mean())
    assert after_rise and after_fall
    assert np.mean(after_rise) > np.mean(after_fall) + 0.3
    assert np.mean(gaze_listen) < 0.5 * np.mean(gaze_idle)


def _expr(conv, name):
    return conv.motion.expression[:, EXPRESSIONS.index(name)]


# Each prompt word's visible effect, relative to the neutral performance of the same seed.
WORD_EFFECTS = {
    "cheerful": lambda m, n, c, b: _expr(c, "smile").mean() > 0.4,
    "sad": lambda m, n, c, b: (
        _expr(c, "sad").mean() > 0.4 and m.head_pitch.mean() > n.head_pitch.mean() + 3
    ),
    "angry": lambda m, n, c, b: m.brow_furrow.mean() > 0.4 and _expr(c, "angry").mean() > 0.4,
    "surprised": lambda m, n, c, b: m.brow_raise.mean() > n.brow_raise.mean() + 0.3,
    "skeptical": lambda m, n, c, b: m.head_roll.mean() > n.head_roll.mean() + 5,
    "calm": lambda m, n, c, b: m.head_yaw.std() < 0.7 * n.head_yaw.std(),
    "energetic": lambda m, n, c, b: m.head_yaw.std() > 1.4 * n.head_yaw.std(),
    "shy": lambda m, n, c, b: (
        m.gaze_y.mean() < n.gaze_y.mean() - 0.25 and m.gaze_x.mean() < n.gaze_x.mean() - 0.2
    ),
    "laughing": lambda m, n, c, b: _expr(c, "laugh").max() > 0.5 > _expr(b, "laugh").max(),
    "bored": lambda m, n, c, b: m.blink_left.min() > 0.25 > n.blink_left.min(),
    "nervous": lambda m, n, c, b: (
        len(_blink_onsets(m.blink_left)) > 1.5 * len(_blink_onsets(n.blink_left))
    ),
    "curious": lambda m, n, c, b: m.head_yaw.mean() > n.head_yaw.mean() + 6,
}


def test_every_prompt_word_has_its_visible_effect():
    assert len(PROMPT_WORDS) >= 8 and set(WORD_EFFECTS) == set(PROMPT_WORDS)
    base = direct_conversation(21, 30.0, prompt="")
    for word in PROMPT_WORDS:
        conv = direct_conversation(21, 30.0, prompt=f"a {word} innkeeper")
        assert conv.script.prompt == f"a {word} innkeeper"
        assert WORD_EFFECTS[word](conv.motion, base.motion, conv, base), word


def test_parse_prompt():
    assert parse_prompt("") == Style()
    assert parse_prompt("zzz unknown words") == Style()
    style = parse_prompt("A Cheerful, NERVOUS baker; cheerful!")
    assert style.words == ("cheerful", "nervous")
    assert style.blink_rate == pytest.approx(PROMPT_WORDS["nervous"].blink_rate)
    weights = style.expression_weights()
    assert weights.sum() == pytest.approx(1.0) and weights[EXPRESSIONS.index("smile")] > 0.5
    with pytest.raises(ValueError, match="prompt"):
        parse_prompt(3)  # type: ignore[arg-type]


def test_character_keeps_its_voice_and_bad_seconds_are_rejected():
    from lpm_npc.synth.character import CharacterSpec

    spec = CharacterSpec.from_seed(77)
    a = direct_conversation(1, 3.0, spec=spec, prompt="")
    b = direct_conversation(2, 3.0, spec=spec, prompt="")
    assert a.script.npc_voice == b.script.npc_voice == voice_for_character(spec, 0).name
    with pytest.raises(ValueError, match="seconds"):
        direct_conversation(0, 0.1)
