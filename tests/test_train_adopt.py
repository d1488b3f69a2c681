"""Adopting a checkpoint's judge as a run's judge stage (lpm_npc/train/adopt.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lpm_npc.train.adopt import ADOPTED_FILE, adopt_judge, main, record_in_recipe
from lpm_npc.train.loop import completed_result


def _checkpoint(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_file(
        {"w": torch.arange(6, dtype=torch.float16).reshape(2, 3)}, str(ckpt / "judge.safetensors")
    )
    entry = {
        "stage": "judge",
        "steps": 430,
        "samples": 13760,
        "seconds": 9.45,
        "samples_per_s": 1454.0,
        "first_loss": 2.8,
        "final_loss": 2.7,
        "stopped_by": "time",
        "resumed_from_step": 0,
        "world_size": 1,
        "device": "cuda",
    }
    recipe = {"stages": {"judge": entry}, "judge_continuations": [{"steps": 1259}]}
    (ckpt / "recipe.json").write_text(json.dumps(recipe))
    return ckpt


def test_adopted_judge_is_a_finished_stage_with_its_provenance(tmp_path: Path) -> None:
    ckpt, run = _checkpoint(tmp_path), tmp_path / "run"
    record = adopt_judge(ckpt, run)
    state = load_file(str(run / "judge" / "final.safetensors"))
    assert state["w"].dtype == torch.float32
    assert torch.equal(state["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    result = completed_result(run, "judge")
    assert result is not None and result.steps == 430 and result.device == "cuda"
    assert len(record["judge_sha256"]) == 64 and record["judge_continuations"] == [{"steps": 1259}]
    assert adopt_judge(ckpt, run) == record  # idempotent: a resumed script adopts once

    exported = tmp_path / "recipe.json"
    exported.write_text(json.dumps({"stages": {}, "judge_continuations": []}))
    recipe = record_in_recipe(run, exported)
    assert json.loads(exported.read_text()) == recipe
    assert recipe["judge_adopted_from"]["judge_sha256"] == record["judge_sha256"]
    assert recipe["judge_continuations"] == [{"steps": 1259}]


def test_a_trained_judge_stage_is_never_replaced(tmp_path: Path) -> None:
    ckpt, run = _checkpoint(tmp_path), tmp_path / "run"
    (run / "judge").mkdir(parents=True)
    save_file({"w": torch.zeros(1)}, str(run / "judge" / "final.safetensors"))
    (run / "judge" / "result.json").write_text("{}")
    with pytest.raises(FileExistsError):
        adopt_judge(ckpt, run)
    assert not (run / "judge" / ADOPTED_FILE).exists()
    assert torch.equal(load_file(str(run / "judge" / "final.safetensors"))["w"], torch.zeros(1))


def test_cli_names_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--from", str(tmp_path / "nope"), "--run", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "judge.safetensors" in capsys.readouterr().err


def test_export_carries_an_adopted_legacy_judge(tmp_path: Path) -> None:
    """A judge of the first (one-stream) architecture survives adopt -> export -> load_judge."""
    from lpm_npc.config import ModelConfig, StageConfig, TrainConfig
    from lpm_npc.judge.net_legacy import LegacyJudgeNet
    from lpm_npc.judge.reader import load_judge
    from lpm_npc.train.export import export_checkpoint

    ckpt, run = _checkpoint(tmp_path), tmp_path / "run"
    legacy = LegacyJudgeNet(image_size=32, width=8)
    save_file(
        {k: v.half() for k, v in legacy.state_dict().items()},
        str(ckpt / "judge.safetensors"),
        metadata={"image_size": "32", "width": "8"},
    )
    adopt_judge(ckpt, run)
    (run / "refiner").mkdir(parents=True)
    save_file({"w": torch.ones(2)}, str(run / "refiner" / "final.safetensors"))
    (run / "refiner" / "result.json").write_text(
        (run / "judge" / "result.json").read_text().replace('"judge"', '"refiner"')
    )
    stages = tuple(
        StageConfig(n, minutes=1, max_steps=0, batch_size=2, clip_frames=8, lr=1e-3)
        for n in ("judge", "refiner")
    )
    train = TrainConfig(preset="test", stages=stages, n_characters=2, judge_size=32)
    export = export_checkpoint(run, tmp_path / "export", train, ModelConfig.from_name("test"))
    judge = load_judge(export)
    assert isinstance(judge.net, LegacyJudgeNet)
    for name, value in legacy.state_dict().items():
        assert torch.equal(judge.net.state_dict()[name], value.half().float()), name
