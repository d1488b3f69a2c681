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

from lpm_npc.bench.quality_metrics import event_onsets, pearson, psnr_db, segment_mask
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


def test_bench_quality_returns_every_key_finite(micro_checkpoint, monkeypatch):
    from lpm_npc.bench import quality

    monkeypatch.setitem(quality.QUALITY_SUITES, "micro", MICRO_SUITE)
    report = quality.run_quality(micro_checkpoint, "micro")
    data = dataclasses.asdict(report)
    expected = {
        "lipsync_corr_babble", "lipsync_corr_tts", "listen_reaction_ratio", "identity_psnr_db",
        "identity_drift_db", "text_control_acc", "student_teacher_gap_db", "single_ref_drift_db",
        "no_listen_reaction_ratio", "lipsync_corr_babble_truth", "listen_reaction_ratio_truth",
        "text_control_acc_truth",
    }  # fmt: skip
    assert expected <= set(data)
    for key in expected:
        assert isinstance(data[key], float) and math.isfinite(data[key]), key
    assert 0.0 <= report.text_control_acc <= 1.0 and report.listen_reaction_ratio > 0
    assert any("horizon" in note for note in report.notes)
    with pytest.raises(ValueError, match="suite"):
        quality.run_quality(micro_checkpoint, "huge")


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
