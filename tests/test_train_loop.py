"""The shared training loop and checkpoints: budgets, LR schedule, EMA, kill/resume equivalence."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from lpm_npc.config import StageConfig, TrainConfig
from lpm_npc.train.checkpoint import latest_checkpoint, list_checkpoints
from lpm_npc.train.distributed import DistInfo, resolve_device
from lpm_npc.train.loop import LoopOptions, StageObjective, lr_at, run_stage

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Points(Dataset):
    """y = x @ W_true + noise, deterministic per index."""

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int):
        g = torch.Generator().manual_seed(index)
        x = torch.randn(8, generator=g)
        w = torch.arange(8, dtype=torch.float32) / 8
        return {"x": x, "y": (x * w).sum(0, keepdim=True)}


class Regression(StageObjective):
    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, batch):
        # Noise from the global RNG checks that resumed runs re-seed it identically.
        noisy = batch["x"] + 0.01 * torch.randn_like(batch["x"])
        loss = torch.mean((self.student(noisy) - batch["y"]) ** 2)
        return loss, {"mse": float(loss.detach())}


def _stage(**kw) -> StageConfig:
    base = dict(name="judge", minutes=0, max_steps=0, batch_size=8, clip_frames=4, lr=1e-2)
    base.update(kw)
    return StageConfig(warmup_steps=2, **base)


def _train(tmp_path, steps, **kw):
    torch.manual_seed(0)
    objective = Regression()
    opts = LoopOptions(out_dir=tmp_path, max_steps=steps, progress=False, **kw)
    return objective, run_stage(objective, Points(), None, _stage(), opts, CPU)


def test_lr_schedule_warms_up_and_decays():
    cfg = _stage(lr=1.0, lr_decay_frac=0.2, lr_final_frac=0.1)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(0.5)
    assert lr_at(cfg, 10, 0.5) == pytest.approx(1.0)
    assert lr_at(cfg, 10, 0.9) == pytest.approx(0.55)
    assert lr_at(cfg, 10, 1.0) == pytest.approx(0.1)


def test_loss_decreases_and_outputs_are_written(tmp_path):
    objective, result = _train(tmp_path, 60)
    assert result.steps == 60 and result.stopped_by == "steps"
    assert result.final_loss < 0.5 * result.first_loss
    final = load_file(str(tmp_path / "judge" / "final.safetensors"))
    # The student leaves holding the EMA weights, and that is what final.safetensors stores.
    for name, value in objective.student.state_dict().items():
        assert torch.equal(final[name], value)
    assert json.loads((tmp_path / "judge" / "result.json").read_text())["steps"] == 60


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    _, full = _train(tmp_path / "full", 12)
    # "Kill" after step 7; the newest checkpoint is step 6 (checkpoints every 3 steps).
    _, cut = _train(tmp_path / "cut", 12, checkpoint_every_steps=3, stop_after_step=7)
    assert cut is None
    assert latest_checkpoint(tmp_path / "cut" / "judge" / "ckpt").name == "step_00000006"
    _, resumed = _train(tmp_path / "cut", 12, checkpoint_every_steps=3, resume=True)
    assert resumed.resumed_from_step == 6 and resumed.steps == 12
    a = load_file(str(tmp_path / "full" / "judge" / "final.safetensors"))
    b = load_file(str(tmp_path / "cut" / "judge" / "final.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    assert len(list_checkpoints(tmp_path / "cut" / "judge" / "ckpt")) <= 2  # older ones pruned


def test_time_budget_stops_the_stage(tmp_path):
    torch.manual_seed(0)
    opts = LoopOptions(out_dir=tmp_path, minutes=0.5 / 60, progress=False)
    result = run_stage(Regression(), Points(), None, _stage(), opts, CPU)
    assert result.stopped_by == "time" and result.steps > 0 and math.isfinite(result.final_loss)


def test_budget_and_device_errors(tmp_path):
    with pytest.raises(ValueError, match="budget"):
        run_stage(Regression(), Points(), None, _stage(), LoopOptions(out_dir=tmp_path), CPU)
    with pytest.raises(ValueError, match="--device"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="clip_frames"):
        _stage(clip_frames=6)


def test_recipe_budget_fits_eight_hours():
    tiny = TrainConfig.from_name("tiny")
    assert sum(s.minutes for s in tiny.stages) <= 480
    assert [s.name for s in tiny.stages][0] == "vae"


def test_minutes_scale_and_per_stage_overrides(tmp_path):
    from lpm_npc.train.recipe import RunOptions, loop_options

    tiny = TrainConfig.from_name("tiny")
    scaled = loop_options(tiny, "base", RunOptions(out_dir=tmp_path, minutes_scale=0.02))
    assert scaled.minutes == pytest.approx(tiny.stage("base").minutes * 0.02)
    assert sum(s.minutes for s in tiny.stages) * 0.02 < 10  # a <= 10 min GPU budget
    fixed = loop_options(tiny, "base", RunOptions(out_dir=tmp_path, minutes=3, steps=7))
    assert fixed.minutes == 3 and fixed.max_steps == 7
