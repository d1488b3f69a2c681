"""The director's listening world, measured from motion truth with LPM-Bench-synth's detector."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from lpm_npc.bench.quality_metrics import event_onsets, segment_mask
from lpm_npc.config import FPS, QUALITY_SUITES
from lpm_npc.synth.listening_check import (
    held_out_conversations,
    listening_ratio,
    reaction_counts,
    summarize,
)
from lpm_npc.synth.performance import temperament

SUITE = QUALITY_SUITES["full"]


def _far_from_talk(conv, seconds: float) -> np.ndarray:
    """Silence frames at least `seconds` away from anyone talking (no reaction tails)."""
    from scipy.ndimage import binary_dilation

    n = conv.motion.n_frames
    silence = segment_mask(conv.script.turns, "silence", n, FPS)
    reach = int(seconds * FPS)
    return silence & ~binary_dilation(~silence, np.ones(2 * reach + 1, bool))


def test_listening_beats_idle_three_times_on_held_out_conversations():
    conversations = held_out_conversations(4)
    summary = summarize(conversations)
    assert summary["ratio_min"] >= 3.0, summary
    assert summary["ratio_pooled"] >= 3.0, summary
    # The ratio is earned by reactions, not only by a still idle: the player's turns hold events.
    assert summary["player_events_per_s"] > 0.4, summary


def test_the_same_holds_for_tracks_performed_from_audio():
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.tracks import perform_tracks

    for conv in held_out_conversations(2, seconds=20.0):
        spec = CharacterSpec.from_seed(conv.script.seed)
        heard = perform_tracks(conv.speak, conv.listen, seed=conv.script.seed, spec=spec)
        # Scored against the director's own turns, not the ones found in the audio.
        assert listening_ratio(reaction_counts(heard.motion, conv.script.turns)) >= 3.0


def test_nods_are_clear_and_varied_not_a_metronome():
    intervals, depths = [], []
    for conv in held_out_conversations(3):
        pitch = conv.motion.head_pitch.astype(np.float64)
        player = segment_mask(conv.script.turns, "player", conv.motion.n_frames, FPS)
        onsets = event_onsets(
            pitch, SUITE.nod_threshold_deg, FPS, SUITE.baseline_s, SUITE.refractory_s
        )
        onsets = onsets[player[onsets]]
        relative = pitch - median_filter(pitch, size=25, mode="nearest")
        depths += [relative[f : f + 10].max() for f in onsets]
        intervals += list(np.diff(onsets) / FPS)
    depths, intervals = np.asarray(depths), np.asarray(intervals)
    assert len(depths) > 15
    assert np.median(depths) > 2 * SUITE.nod_threshold_deg  # several degrees, not a twitch
    assert depths.max() - depths.min() > 3.0  # amplitudes vary
    assert intervals.std() / intervals.mean() > 0.4  # timing varies


def test_shared_silence_is_calm_breathing_not_reacting():
    relative_pitch, relative_brow, breath_ptp, idle_frames = [], [], [], 0
    gaze_idle, gaze_listen = [], []
    for conv in held_out_conversations(4):
        m = conv.motion
        silence = _far_from_talk(conv, 0.6)
        idle_frames += int(silence.sum())
        pitch = m.head_pitch.astype(np.float64)
        relative_pitch += list((pitch - median_filter(pitch, size=25, mode="nearest"))[silence])
        brow = m.brow_raise.astype(np.float64)
        relative_brow += list((brow - median_filter(brow, size=25, mode="nearest"))[silence])
        if silence.sum() > 2 * FPS:
            breath_ptp.append(np.ptp(m.breath[silence]))
        player = segment_mask(conv.script.turns, "player", m.n_frames, FPS)
        gaze_idle.append(m.gaze_x[silence].std() if silence.any() else np.nan)
        gaze_listen.append(m.gaze_x[player].std())
    assert idle_frames > 3 * FPS
    assert np.percentile(relative_pitch, 99) < 0.5 * SUITE.nod_threshold_deg
    assert max(relative_brow) < 0.5 * SUITE.brow_threshold
    assert breath_ptp and min(breath_ptp) > 0.3  # breathing shows
    assert np.nanmean(gaze_idle) > np.mean(gaze_listen)  # gaze roams in silence, holds listening


def test_smiles_and_blinks_answer_the_player():
    from lpm_npc.synth.motion import EXPRESSIONS

    smile_listen, smile_speaking, blink_listen, blink_idle = [], [], [], []
    from lpm_npc.synth.director import direct_conversation

    for seed in range(4):
        conv = direct_conversation(seed, 40.0, prompt="")
        m = conv.motion
        player = segment_mask(conv.script.turns, "player", m.n_frames, FPS)
        silence = segment_mask(conv.script.turns, "silence", m.n_frames, FPS)
        speaking = segment_mask(conv.script.turns, "npc", m.n_frames, FPS)
        smile = m.expression[:, EXPRESSIONS.index("smile")]
        base = np.median(smile)
        smile_listen.append((smile[player] - base).mean())
        smile_speaking.append((smile[speaking & ~player] - base).mean())
        closed = m.blink_left > m.blink_left.min() + 0.6
        onsets = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
        blink_listen.append(player[onsets].sum() / player.sum())
        blink_idle.append(silence[onsets].sum() / silence.sum())
    assert np.mean(smile_listen) > np.mean(smile_speaking) + 0.01
    assert np.mean(blink_listen) > 1.3 * np.mean(blink_idle)


def test_characters_listen_in_their_own_way():
    a, b = temperament(1), temperament(2)
    assert a != b and temperament(1) == a
    assert all(0.0 < x < 1.0 for x in (a.nod_prob, a.brow_prob, a.smile_prob, a.double_nod))
