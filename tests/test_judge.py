"""The judge: targets, learning on rendered frames, save/load, reading any frame size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lpm_npc.judge.net import SCALAR_NAMES, JudgeNet, denormalise, motion_targets
from lpm_npc.judge.poses import JudgeFrames, collate_frames, random_pose
from lpm_npc.judge.reader import READ_FIELDS, Judge, load_judge, save_judge
from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES
from lpm_npc.train.stage_judge import JudgeObjective, degrade


def test_targets_roundtrip_and_poses_are_in_range():
    rng = np.random.default_rng(0)
    for _ in range(20):
        motion = random_pose(rng)
        scalars, expression = motion_targets(motion)
        assert (
            scalars.shape == (1, len(SCALAR_NAMES))
            and (0 <= scalars).all()
            and (scalars <= 1).all()
        )
        assert expression.shape == (1, len(EXPRESSIONS))
        assert expression.sum() == pytest.approx(1.0, abs=1e-5)
        back = denormalise(scalars)[0]
        for i, name in enumerate(SCALAR_NAMES):
            lo, hi = SCALAR_RANGES[name]
            assert back[i] == pytest.approx(np.clip(getattr(motion, name)[0], lo, hi), abs=1e-4)


def test_dataset_is_deterministic_and_degrade_keeps_range():
    ds = JudgeFrames(seed=3, size=64)
    a, b = ds[5], ds[5]
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(ds[6][0], a[0])
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    y = degrade(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_judge_learns_jaw_and_yaw_on_rendered_frames():
    torch.manual_seed(0)
    ds = JudgeFrames(seed=11, size=64, n_characters=4)
    batch = collate_frames([ds[i] for i in range(24)])
    objective = JudgeObjective(image_size=64, augment=False)
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, _ = objective(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    reading = Judge(objective.student).read(batch["frames"].numpy())
    true = denormalise(batch["scalars"].numpy())
    for name in ("jaw_open", "head_yaw"):
        truth = true[:, SCALAR_NAMES.index(name)]
        assert np.corrcoef(getattr(reading, name), truth)[0, 1] > 0.6, name


def test_save_load_and_read_any_size(tmp_path):
    torch.manual_seed(0)
    net = JudgeNet(image_size=64, width=16)
    save_judge(
        tmp_path / "judge.safetensors", net, {k: v.half() for k, v in net.state_dict().items()}
    )
    judge = load_judge(tmp_path)
    assert judge.net.image_size == 64
    frames = np.random.default_rng(0).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
    reading = judge.read(frames)
    payload = reading.to_json(fps=24)
    for name in READ_FIELDS:
        assert len(payload[name]) == 5 and all(np.isfinite(payload[name]))
    assert payload["fps"] == 24 and len(payload["expression"]) == 5
    assert reading.head_yaw.min() >= -90 and reading.head_yaw.max() <= 90
    with pytest.raises(ValueError, match="uint8"):
        judge.read(frames.astype(np.float32))
    with pytest.raises(FileNotFoundError, match="judge"):
        load_judge(tmp_path / "missing")
