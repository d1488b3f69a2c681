"""LPM-Bench-synth, `lpm-npc render` and `lpm-npc judge` on a micro checkpoint (random weights)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lpm_npc.bench.quality_metrics import (
    box_psnr_db,
    event_onsets,
    pearson,
    psnr_db,
    segment_mask,
)
from lpm_npc.config import ModelConfig, QualityConfig

MICRO = ModelConfig.from_name("tiny").with_overrides(
    image_size=64,
    vae_channels=(8, 16, 16, 16),
    latent_channels=8,
    dim=32,
    n_heads=2,
    n_layers=2,
    ffn_dim=64,
    refiner_layers=1,
    audio_dim=16,
    text_dim=16,
    n_mels=16,
    teacher_steps=2,
    history_chunks=2,
)
MICRO_SUITE = QualityConfig(
    name="micro",
    n_characters=1,
    conversation_seconds=3.0,
    drift_seconds=2.0,
    drift_window_s=0.5,
    text_seconds=0.5,
    text_prompts=("cheerful", "sad"),
    gap_clips=1,
    gap_frames=8,
    teacher_steps=2,
)


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory):
    from lpm_npc.engine.weights import save_lpm
    from lpm_npc.judge.net import JudgeNet
    from lpm_npc.judge.reader import save_judge
    from lpm_npc.model.lpm import LPM
    from lpm_npc.train.checkpoint import save_tensors_atomic
    from lpm_npc.train.export import TEACHER_FILE, model_overrides

    path = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = LPM(MICRO)
    save_lpm(model, path, preset="tiny", overrides=model_overrides(MICRO))
    save_judge(path / "judge.safetensors", JudgeNet(image_size=64, width=16))
    teacher = {
        k: v.half()
        for k, v in model.state_dict().items()
        if k.startswith(("backbone.", "audio_encoder.", "text_encoder."))
    }
    save_tensors_atomic(path / TEACHER_FILE, teacher)
    (path / "recipe.json").write_text("{}")
    return path


def test_metric_helpers():
    assert pearson(np.arange(10), np.arange(10) * 2) == pytest.approx(1.0)
    assert pearson(np.ones(10), np.arange(10)) == 0.0
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert psnr_db(a, a + 255) == pytest.approx(0.0)
    x = np.zeros(100)
    x[[20, 21, 22, 60]] = 5.0
    assert list(event_onsets(x, 3.0, fps=24, baseline_s=1.0, refractory_s=0.3)) == [20, 60]

    @dataclasses.dataclass
    class Turn:
        speaker: str
        start_s: float
        end_s: float

    mask = segment_mask([Turn("player", 1.0, 2.0), Turn("npc", 2.0, 3.0)], "player", 96, 24)
    assert mask.sum() == 24 and mask[24] and not mask[48]


def test_box_psnr_counts_only_the_box():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[:, 0, 0] = 255  # outside the box: ignored
    boxes = np.array([[2, 2, 6, 6], [4, 4, 8, 8]])
    assert box_psnr_db(a, b, boxes) == pytest.approx(psnr_db(a, a))
    b[1, 5, 5] = 255  # one of 2 x 16 x 3 box values, all channels
    expected = 10 * np.log10(255.0**2 / (3 * 255.0**2 / (2 * 16 * 3)))
    assert box_psnr_db(a, b, boxes) == pytest.approx(expected)
    with pytest.raises(ValueError, match="boxes"):
        box_psnr_db(a, b, boxes[:1])


def test_bench_quality_ladder_has_every_rung_and_real_ordering(micro_checkpoint, monkeypatch):
    from lpm_npc.bench import quality

    monkeypatch.setitem(quality.QUALITY_SUITES, "micro", MICRO_SUITE)
    report = quality.run_quality(micro_checkpoint, "micro")
    data = dataclasses.asdict(report)
    json.dumps(data)  # the report is JSON-ready
    expected = {
        "lipsync_corr_babble", "lipsync_corr_tts", "listen_reaction_ratio", "identity_psnr_db",
        "mouth_psnr_db", "identity_drift_db", "text_control_acc", "student_teacher_gap_db",
        "single_ref_drift_db", "no_listen_reaction_ratio", "lipsync_corr_babble_truth",
        "listen_reaction_ratio_truth", "text_control_acc_truth",
    }  # fmt: skip
    assert expected <= set(data)
    for key in expected:
        assert isinstance(data[key], float) and math.isfinite(data[key]), key
    rungs = report.rungs
    assert list(rungs) == list(quality.RUNGS) == ["truth", "vae", "teacher", "student"]
    for name, metrics in rungs.items():
        assert list(metrics) == list(quality.RUNG_METRICS), name
    # Top-level keys are the student's rung.
    for key in quality.RUNG_METRICS:
        assert data[key] == rungs["student"][key], key
    truth, vae, teacher, student = (rungs[k] for k in quality.RUNGS)
    # Truth scores itself: the PSNR cap, no drift; the VAE round trip loses something.
    assert truth["identity_psnr_db"] > 100 and truth["mouth_psnr_db"] > 100
    assert truth["identity_drift_db"] == 0.0
    assert vae["identity_psnr_db"] < truth["identity_psnr_db"]
    assert vae["mouth_psnr_db"] < truth["mouth_psnr_db"]
    # Random weights draw nothing like the character.
    assert student["identity_psnr_db"] < vae["identity_psnr_db"]
    assert teacher["identity_psnr_db"] < vae["identity_psnr_db"]
    assert report.student_teacher_gap_db == pytest.approx(
        teacher["identity_psnr_db"] - student["identity_psnr_db"]
    )
    assert report.lipsync_corr_babble_truth == truth["lipsync_corr_babble"]
    # Metrics a rung cannot apply are None, not numbers.
    for name in ("truth", "vae", "teacher"):
        assert rungs[name]["single_ref_drift_db"] is None, name
    assert teacher["identity_drift_db"] is None and teacher["no_listen_reaction_ratio"] is None
    for name, metrics in rungs.items():
        for key, value in metrics.items():
            if value is not None:
                assert math.isfinite(value), (name, key)
    assert 0.0 <= report.text_control_acc <= 1.0 and report.listen_reaction_ratio > 0
    assert any("horizon" in note for note in report.notes)
    with pytest.raises(ValueError, match="suite"):
        quality.run_quality(micro_checkpoint, "huge")


def test_teacher_rung_is_empty_with_a_note_without_teacher_weights(micro_checkpoint, tmp_path):
    from lpm_npc.bench.quality import teacher_frames
    from lpm_npc.engine.generator import StreamingGenerator

    generator = StreamingGenerator.from_checkpoint(micro_checkpoint)
    notes: list[str] = []
    frames = teacher_frames(generator, tmp_path, cases=None, s=MICRO_SUITE, notes=notes)
    assert frames.conv is None and frames.text is None
    assert notes and "teacher.safetensors" in notes[0]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lpm_npc.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_render_and_judge_clis(micro_checkpoint, tmp_path):
    from lpm_npc.synth.audio_io import write_wav
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.sheet import render_sheet, write_sheet
    from lpm_npc.synth.speech import babble
    from lpm_npc.synth.video_io import read_mp4

    write_sheet(render_sheet(CharacterSpec.from_seed(1_000_123), 64), tmp_path / "sheet")
    write_wav(tmp_path / "speak.wav", babble(1, 1.0))
    write_wav(tmp_path / "listen.wav", babble(2, 0.5))
    out = _cli(
        "render", "--character", str(tmp_path / "sheet"), "--speak", str(tmp_path / "speak.wav"),
        "--listen", str(tmp_path / "listen.wav"), "--checkpoint", str(micro_checkpoint),
        "--out", str(tmp_path / "out.mp4"), "--frames", str(tmp_path / "frames"),
        "--json", str(tmp_path / "stats.json"), "--prompt", "cheerful",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    frames, fps = read_mp4(tmp_path / "out.mp4")
    stats = json.loads((tmp_path / "stats.json").read_text())
    expected = math.ceil(16_000 / MICRO.samples_per_chunk) * MICRO.frames_per_chunk  # whole chunks
    assert len(frames) == stats["frames"] == expected and fps == pytest.approx(24)
    assert len(list((tmp_path / "frames").glob("*.png"))) == expected
    judged = _cli(
        "judge",
        "--video",
        str(tmp_path / "out.mp4"),
        "--checkpoint",
        str(micro_checkpoint),
        "--json",
    )
    assert judged.returncode == 0, judged.stderr[-2000:]
    payload = json.loads(judged.stdout)
    for key in ("jaw_open", "blink", "brow_raise", "head_pitch", "head_yaw", "smile"):
        assert len(payload[key]) == expected and all(math.isfinite(v) for v in payload[key])
    assert payload["fps"] == pytest.approx(24)
    bad = _cli("render", "--character", str(tmp_path / "sheet"), "--speak", str(tmp_path / "no.wav"),
               "--out", str(tmp_path / "x.mp4"), "--checkpoint", str(micro_checkpoint))  # fmt: skip
    assert bad.returncode == 2 and "no.wav" in bad.stderr


def test_judge_calibrate_cli(micro_checkpoint):
    out = _cli(
        "judge", "--calibrate", "--json", "--checkpoint", str(micro_checkpoint),
        "--characters", "1", "--seconds", "2", "--text-seconds", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    for name in ("jaw_open", "head_pitch", "head_yaw", "blink", "brow_raise"):
        channel = result["channels"][name]
        assert set(channel) == {"truth_r", "vae_r", "truth_r_all", "vae_r_all", "scored", "hidden"}
        assert channel["scored"] + len(channel["hidden"]) <= 1
    assert result["cases"][0]["character_seed"] >= 1_000_000
    assert set(result["cases"][0]["visibility_px"]) >= {"jaw_open", "blink", "brow_raise"}
    assert 0.0 <= result["expression"]["truth_acc"] <= 1.0
    assert set(result["goals_met"]) >= {"jaw_open", "expression", "jaw_open_vae"}
    bad = _cli("judge", "--calibrate", "--checkpoint", str(micro_checkpoint), "--characters", "0")
    assert bad.returncode == 2 and "--characters" in bad.stderr
