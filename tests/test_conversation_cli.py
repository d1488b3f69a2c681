"""`lpm-npc synth conversation`: a clip folder with five aligned files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lpm_npc import cli
from lpm_npc.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from lpm_npc.synth.audio_io import read_wav
from lpm_npc.synth.conversation import CLIP_FILES, mix_tracks
from lpm_npc.synth.director import direct_conversation
from lpm_npc.synth.motion import Motion
from lpm_npc.synth.video_io import read_mp4, read_mp4_audio


def test_conversation_writes_five_aligned_files(tmp_path, capsys):
    out = tmp_path / "clip"
    argv = ["synth", "conversation", "--seed", "7", "--seconds", "3", "--size", "64"]
    assert cli.main([*argv, "--prompt", "angry", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == sorted(CLIP_FILES)
    n = 3 * SAMPLE_RATE // SAMPLES_PER_FRAME
    assert summary["n_frames"] == n and summary["prompt"] == "angry"

    speak, listen = read_wav(out / "speak.wav"), read_wav(out / "listen.wav")
    assert speak.shape == listen.shape == (n * SAMPLES_PER_FRAME,)
    conv = direct_conversation(7, 3.0, prompt="angry")
    assert np.abs(speak - conv.speak).max() < 1e-3  # what was directed is what was written

    with np.load(out / "motion.npz") as data:
        motion = Motion.from_arrays(dict(data))
    assert motion.n_frames == n
    assert np.allclose(motion.head_yaw, conv.motion.head_yaw)

    script = json.loads((out / "script.json").read_text())
    assert script["prompt"] == "angry" and script["character_seed"] == 7 and script["seed"] == 7
    assert script["turns"] and {t["speaker"] for t in script["turns"]} <= {
        "npc",
        "player",
        "silence",
    }
    assert script["turns"][-1]["end_s"] == pytest.approx(n * SAMPLES_PER_FRAME / SAMPLE_RATE)

    frames, fps = read_mp4(out / "video.mp4")
    assert frames.shape == (n, 64, 64, 3) and fps == FPS
    assert frames.std(axis=0).mean() > 0.5  # the character moves
    audio, rate = read_mp4_audio(out / "video.mp4")
    assert rate == SAMPLE_RATE and abs(len(audio) - len(speak)) < 2048
    mixed = mix_tracks(speak, listen)
    k = min(len(audio), len(mixed))
    assert np.corrcoef(audio[:k], mixed[:k])[0, 1] > 0.9

    # Without --json the command prints the folder; the same seed writes the same audio.
    again = tmp_path / "again"
    assert cli.main([*argv, "--prompt", "angry", "--out", str(again)]) == 0
    assert capsys.readouterr().out.strip() == str(again)
    assert np.array_equal(read_wav(again / "speak.wav"), speak)


def test_conversation_rejects_bad_size(tmp_path, capsys):
    argv = ["synth", "conversation", "--seconds", "1", "--size", "63", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "size" in capsys.readouterr().err


def test_conversation_uses_the_designer_sheet_seed(tmp_path, capsys):
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.render import render_frames
    from lpm_npc.synth.sheet import render_sheet, write_sheet

    sheet_dir = write_sheet(render_sheet(CharacterSpec.from_seed(42), 64), tmp_path / "sheet")
    out = tmp_path / "clip"
    argv = ["synth", "conversation", "--seed", "3", "--seconds", "1", "--size", "64"]
    assert cli.main([*argv, "--character", str(sheet_dir), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["character_seed"] == 42
    assert json.loads((out / "script.json").read_text())["character_seed"] == 42
    with np.load(out / "motion.npz") as data:
        motion = Motion.from_arrays(dict(data))
    frames, _ = read_mp4(out / "video.mp4")
    expected = render_frames(CharacterSpec.from_seed(42), motion, 64).astype(float)
    other = render_frames(CharacterSpec.from_seed(3), motion, 64).astype(float)
    assert np.abs(frames - expected).mean() < 0.5 * np.abs(frames - other).mean()
