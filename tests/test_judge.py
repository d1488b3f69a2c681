"""The judge: targets, training data, the face crop, learning on rendered frames, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lpm_npc.judge.net import (
    SCALAR_NAMES,
    JudgeNet,
    crop_frames,
    denormalise,
    face_crop_targets,
    motion_targets,
)
from lpm_npc.judge.net_legacy import LegacyJudgeNet
from lpm_npc.judge.poses import GROUP, JudgeFrames, collate_frames, random_pose
from lpm_npc.judge.reader import READ_FIELDS, Judge, load_judge, net_for_state, save_judge
from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES
from lpm_npc.train.stage_judge import JudgeObjective, degrade, whole_groups


def test_targets_roundtrip_and_poses_are_in_range():
    rng = np.random.default_rng(0)
    for _ in range(20):
        motion = random_pose(rng)
        scalars, expression = motion_targets(motion)
        assert scalars.shape == (1, len(SCALAR_NAMES))
        assert (0 <= scalars).all() and (scalars <= 1).all()
        assert expression.shape == (1, len(EXPRESSIONS))
        assert expression.sum() == pytest.approx(1.0, abs=1e-5)
        back = denormalise(scalars)[0]
        for i, name in enumerate(SCALAR_NAMES):
            lo, hi = SCALAR_RANGES[name]
            assert back[i] == pytest.approx(np.clip(getattr(motion, name)[0], lo, hi), abs=1e-4)


def test_random_poses_show_brows_without_expression_offsets():
    """Half the random poses are neutral and most have no furrow, so a brow raise is seen alone."""
    rng = np.random.default_rng(1)
    poses = [random_pose(rng) for _ in range(600)]
    neutral = np.mean([p.expression[0].argmax() == 0 for p in poses])
    unfurrowed = np.mean([p.brow_furrow[0] == 0.0 for p in poses])
    raised = np.mean([p.brow_raise[0] > 0.5 for p in poses])
    assert 0.5 <= neutral <= 0.65  # 0.5 forced + a uniform draw that lands on neutral
    assert 0.52 <= unfurrowed <= 0.68 and 0.25 <= raised <= 0.45


def test_dataset_groups_are_clips_or_random_poses_and_deterministic():
    ds = JudgeFrames(seed=3, size=64, conversation_frac=0.5)
    items = [ds[i] for i in range(8 * GROUP)]
    again = JudgeFrames(seed=3, size=64, conversation_frac=0.5)[5]
    assert np.array_equal(items[5][0], again[0]) and np.array_equal(items[5][1], again[1])
    batch = collate_frames(items)
    assert batch["frames"].shape == (8 * GROUP, 64, 64, 3) and batch["crop"].shape == (32, 3)
    groups, smooth = batch["group"].view(-1, GROUP), batch["smooth"].view(-1, GROUP)
    assert (groups == torch.arange(8)[:, None]).all()
    assert (smooth == smooth[:, :1]).all() and 0 < int(smooth[:, 0].sum()) < 8
    yaw = batch["scalars"][:, SCALAR_NAMES.index("head_yaw")].view(-1, GROUP)
    # A conversation group moves smoothly; random poses jump.
    steps = (yaw[:, 1:] - yaw[:, :-1]).abs().amax(dim=1) * 180.0
    assert steps[smooth[:, 0]].max() < 5.0 < steps[~smooth[:, 0]].min()
    # The crop holds the face: its centre is inside the frame, its side a sensible share.
    crop = batch["crop"]
    assert ((crop[:, :2] > 0.2) & (crop[:, :2] < 0.8)).all()
    assert ((crop[:, 2] > 0.2) & (crop[:, 2] < 0.9)).all()
    assert list(whole_groups(batch["group"], batch["smooth"])) == list(
        torch.nonzero(smooth[:, 0]).flatten()
    )
    shifted = whole_groups(batch["group"][2:], batch["smooth"][2:])  # misaligned: no whole group
    assert len(shifted) == 0
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    y = degrade(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_face_crop_geometry():
    crops = face_crop_targets(np.array([[32, 16, 96, 80], [0, 0, 10, 40]]), 128)
    assert crops[0] == pytest.approx([0.5, 0.375, 64 * 1.15 / 128])
    assert crops[1] == pytest.approx([5 / 128, 20 / 128, 40 * 1.15 / 128])
    x = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32).contiguous()
    whole = crop_frames(x, torch.tensor([[0.5, 0.5, 1.0], [0.5, 0.5, 1.0]]), 32)
    torch.testing.assert_close(whole, x, atol=1e-5, rtol=0)
    left = crop_frames(x, torch.tensor([[0.25, 0.5, 0.5], [0.75, 0.5, 0.5]]), 16)
    assert float(left[0].mean()) < -0.4 and float(left[1].mean()) > 0.4


def test_judge_learns_jaw_and_yaw_on_rendered_frames():
    torch.manual_seed(0)
    ds = JudgeFrames(seed=11, size=64, n_characters=4, conversation_frac=0.0)
    batch = collate_frames([ds[i] for i in range(24)])
    objective = JudgeObjective(image_size=64, augment=False, width=16, crop_size=32)
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


def test_save_load_any_shape_and_legacy_files(tmp_path):
    torch.manual_seed(0)
    net = JudgeNet(image_size=64, width=16, crop_size=32)
    save_judge(
        tmp_path / "judge.safetensors", net, {k: v.half() for k, v in net.state_dict().items()}
    )
    judge = load_judge(tmp_path)
    assert isinstance(judge.net, JudgeNet)
    assert (judge.net.image_size, judge.net.width, judge.net.crop_size) == (64, 16, 32)
    frames = np.random.default_rng(0).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
    reading = judge.read(frames)
    payload = reading.to_json(fps=24)
    for name in READ_FIELDS:
        assert len(payload[name]) == 5 and all(np.isfinite(payload[name]))
    assert payload["fps"] == 24 and len(payload["expression"]) == 5
    assert reading.head_yaw.min() >= -90 and reading.head_yaw.max() <= 90
    # A stage's bare final.safetensors (no metadata) and a first-architecture file both load.
    from safetensors.torch import save_file

    legacy = LegacyJudgeNet(image_size=64, width=16)
    save_file(legacy.state_dict(), str(tmp_path / "old.safetensors"))
    assert isinstance(load_judge(tmp_path / "old.safetensors").net, LegacyJudgeNet)
    assert load_judge(tmp_path / "old.safetensors").read(frames).jaw_open.shape == (5,)
    save_file(net.state_dict(), str(tmp_path / "final.safetensors"))
    assert isinstance(load_judge(tmp_path / "final.safetensors").net, JudgeNet)
    with pytest.raises(ValueError, match="not a judge"):
        net_for_state({"w": torch.zeros(1)})
    with pytest.raises(ValueError, match="uint8"):
        judge.read(frames.astype(np.float32))
    with pytest.raises(FileNotFoundError, match="judge"):
        load_judge(tmp_path / "missing")


def test_round_trip_touches_only_whole_conversation_clips(tmp_path):
    from safetensors.torch import save_file

    from lpm_npc.config import ModelConfig
    from lpm_npc.model.vae import VideoVAE, load_frozen_vae
    from lpm_npc.train.stage_judge import vae_weights_path

    cfg = ModelConfig.from_name("tiny").with_overrides(
        image_size=64, vae_channels=(8, 8, 8, 8), latent_channels=4
    )
    torch.manual_seed(0)
    own = tmp_path / "run" / "vae" / "final.safetensors"
    own.parent.mkdir(parents=True)
    save_file({f"vae.{k}": v.contiguous() for k, v in VideoVAE(cfg).state_dict().items()}, str(own))
    assert vae_weights_path(tmp_path / "run") == own  # the run's own VAE stage comes first
    assert vae_weights_path(tmp_path / "other").name == "model.safetensors"
    vae = load_frozen_vae(own, cfg)
    with pytest.raises(ValueError, match="does not fit"):
        load_frozen_vae(own, cfg.with_overrides(vae_channels=(8, 16, 16, 16)))
    # The latent width is read off the tensors, as the decoder's widths are.
    assert load_frozen_vae(own, cfg.with_overrides(latent_channels=8)).cfg.latent_channels == 4
    objective = JudgeObjective(64, vae=vae, vae_frac=1.0, width=16, crop_size=32).train()
    assert not objective.vae.training
    ds = JudgeFrames(seed=3, size=64, conversation_frac=0.5)
    batch = collate_frames([ds[i] for i in range(8 * GROUP)])
    x = batch["frames"].permute(0, 3, 1, 2).float() / 127.5 - 1
    out = objective.round_trip(x, batch)
    changed = (out - x).abs().flatten(1).amax(dim=1) > 0
    assert torch.equal(changed, batch["smooth"])  # every clip (vae_frac=1), no random-pose group
    loss, logs = objective(batch)
    assert torch.isfinite(loss) and {"scalar", "ce", "crop"} <= set(logs)
