"""Ground truth for any audio: prosody analysis, `perform_tracks` and `synth conversation --speak`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lpm_npc import cli
from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.audio_io import read_wav
from lpm_npc.synth.director import direct_conversation
from lpm_npc.synth.motion import Motion
from lpm_npc.synth.performance import state_per_frame
from lpm_npc.synth.prosody import phrases_from_audio, pitch_track
from lpm_npc.synth.script import Turn
from lpm_npc.synth.speech import VOICES, synthesize
from lpm_npc.synth.tracks import perform_tracks


def _harmonic(f0: np.ndarray) -> np.ndarray:
    """A voiced-like tone (10 harmonics) following the per-sample pitch f0."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 11))).astype(np.float32)


def test_pitch_track_reads_tones_and_rising_phrases():
    flat = _harmonic(np.full(SAMPLE_RATE, 150.0))
    f0 = pitch_track(flat)
    assert np.median(f0[f0 > 0]) == pytest.approx(150.0, rel=0.03)
    assert (f0 > 0).mean() > 0.9
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    rise = _harmonic(np.concatenate([np.full(12000, 140.0), np.linspace(140, 210, 6000)]))
    fall = _harmonic(np.linspace(180.0, 120.0, 18000))
    phrases = phrases_from_audio(np.concatenate([gap, rise, gap, fall, gap]))
    assert [rising for _, _, rising in phrases] == [True, False]


def test_babble_phrase_ends_are_found_in_the_audio():
    found = total = false_rises = 0
    for seed in range(4):
        utt = synthesize(seed, 6.0, VOICES[sorted(VOICES)[seed]])
        detected = phrases_from_audio(utt.pcm)
        for phrase in utt.phrases:
            frame = (phrase.end - 1) // SAMPLES_PER_FRAME
            match = [d for d in detected if abs(d[1] - frame) <= 3]
            total += 1
            found += bool(match)
            false_rises += bool(match) and match[0][2] and not phrase.rising
    assert found >= 0.9 * total and false_rises <= 1


def test_perform_tracks_finds_turns_and_is_deterministic():
    conv = direct_conversation(5, 20.0, prompt="")
    heard = perform_tracks(conv.speak, conv.listen, seed=5, prompt="")
    n = conv.motion.n_frames
    assert heard.motion.n_frames == n and np.array_equal(heard.speak, conv.speak)
    agree = state_per_frame(heard.script.turns, n) == state_per_frame(conv.script.turns, n)
    assert agree.mean() > 0.85
    assert np.array_equal(heard.motion.jaw_open, conv.motion.jaw_open)  # lips follow speak
    again = perform_tracks(conv.speak, conv.listen, seed=5, prompt="")
    for name, arr in heard.motion.to_arrays().items():
        assert np.array_equal(arr, again.motion.to_arrays()[name]), name
    ends = [p.time_s for p in heard.script.phrase_ends if p.speaker == "player"]
    truth = [p.time_s for p in conv.script.phrase_ends if p.speaker == "player"]
    assert truth and sum(min(abs(t - e) for e in ends) < 0.15 for t in truth) >= 0.9 * len(truth)


def test_perform_tracks_pads_resamples_and_keeps_given_turns():
    speak = synthesize(1, 2.0, VOICES["tenor"]).pcm
    listen_44k = np.zeros(int(3.3 * 44100), np.float32)
    turns = [Turn("npc", 0.0, 1.2), Turn("player", 1.5, 1.9)]
    with pytest.raises(ValueError, match="speak"):
        perform_tracks(speak[:, None], None)
    conv = perform_tracks(speak, None, turns, seed=2, prompt="calm")
    assert len(conv.listen) == len(conv.speak) and not conv.listen.any()
    assert [t.speaker for t in conv.script.turns] == ["npc", "silence", "player", "silence"]
    from scipy.signal import resample_poly

    long = perform_tracks(
        resample_poly(speak, 441, 160).astype(np.float32), listen_44k, sample_rate=44100
    )
    n = long.motion.n_frames
    assert n == -(-int(3.3 * SAMPLE_RATE) // SAMPLES_PER_FRAME)
    assert len(long.speak) == len(long.listen) == n * SAMPLES_PER_FRAME
    with pytest.raises(ValueError, match="turns\\[0\\].speaker"):
        perform_tracks(speak, None, [Turn("dog", 0.0, 1.0)])
    with pytest.raises(ValueError, match="allowed"):
        perform_tracks(speak[:4000], None)


def test_cli_performs_given_wavs(tmp_path, capsys):
    import soundfile as sf

    speak = np.concatenate([synthesize(3, 2.5, VOICES["low"]).pcm, np.zeros(40000, np.float32)])
    listen = np.concatenate([np.zeros(48000, np.float32), synthesize(4, 2.0, VOICES["alto"]).pcm])
    sf.write(tmp_path / "A.wav", speak, SAMPLE_RATE)
    from scipy.signal import resample_poly

    stereo = resample_poly(listen, 441, 160)
    sf.write(tmp_path / "B.wav", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    out = tmp_path / "clip"
    argv = ["synth", "conversation", "--speak", str(tmp_path / "A.wav")]
    argv += ["--listen", str(tmp_path / "B.wav"), "--size", "64", "--out", str(out), "--json"]
    assert cli.main([*argv, "--character", "samples/characters/ash", "--prompt", ""]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["speak.wav", "listen.wav", "motion.npz", "script.json", "video.mp4"]
    )
    assert summary["character_seed"] == 59  # the sheet's seed picks the look
    written_speak, written_listen = read_wav(out / "speak.wav"), read_wav(out / "listen.wav")
    assert len(written_speak) == len(written_listen) == summary["n_frames"] * SAMPLES_PER_FRAME
    assert np.corrcoef(written_speak[: len(speak)], speak)[0, 1] > 0.99
    script = json.loads((out / "script.json").read_text())
    speakers = [t["speaker"] for t in script["turns"]]
    assert "npc" in speakers and "player" in speakers
    player = next(t for t in script["turns"] if t["speaker"] == "player")
    assert abs(player["start_s"] - 3.0) < 0.3  # the listen track's speech starts at 3 s
    with np.load(out / "motion.npz") as data:
        motion = Motion.from_arrays(dict(data))
    npc = state_per_frame([Turn(**t) for t in script["turns"]], motion.n_frames) == "npc"
    assert motion.jaw_open[npc].mean() > 5 * motion.jaw_open[~npc].mean() + 0.01
    assert script["n_frames"] == motion.n_frames and script["fps"] == FPS


def test_cli_names_bad_inputs(tmp_path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    base = ["synth", "conversation", "--size", "64", "--out", str(tmp_path / "o")]
    assert cli.main([*base, "--speak", str(tmp_path / "bad.wav")]) == 2
    assert "bad.wav" in capsys.readouterr().err
    good = tmp_path / "good.wav"
    import soundfile as sf

    sf.write(good, synthesize(0, 1.0, VOICES["tenor"]).pcm, SAMPLE_RATE)
    turns = tmp_path / "T.json"
    turns.write_text(json.dumps([{"speaker": "npc", "start_s": 0.0}]))
    assert cli.main([*base, "--speak", str(good), "--turns", str(turns)]) == 2
    err = capsys.readouterr().err
    assert "T.json" in err and "end_s" in err
    assert cli.main([*base, "--speak", str(good), "--seconds", "3"]) == 2
    assert "--seconds" in capsys.readouterr().err
