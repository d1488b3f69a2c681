"""Every training stage at a micro config: runs, finite losses, overfits a fixed batch, exports."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lpm_npc.config import ModelConfig, StageConfig, TrainConfig
from lpm_npc.train.batch import collate_clips
from lpm_npc.train.distributed import DistInfo
from lpm_npc.train.recipe import RunOptions, run_recipe

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
    teacher_steps=4,
    history_chunks=2,
)
STAGES = ("vae", "judge", "base", "causal", "ode", "rollout", "refiner")


def micro_train() -> TrainConfig:
    stages = tuple(
        StageConfig(
            name,
            minutes=1,
            max_steps=0,
            batch_size=4 if name == "judge" else 1,
            clip_frames=8,
            lr=1e-3,
            warmup_steps=1,
        )
        for name in STAGES
    )
    return TrainConfig(
        preset="tiny", stages=stages, judge_size=64, teacher_steps=2, rollout_chunks=2
    )


CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _fixed_batch(n: int = 1, frames: int = 8):
    from lpm_npc.synth.dataset import ClipDataset

    ds = ClipDataset(seed=3, size=MICRO.image_size, n_frames=frames, n_characters=2)
    return collate_clips([ds[i] for i in range(n)])


def _overfit(objective, batch, steps: int = 12, lr: float = 5e-3) -> list[float]:
    params = [p for p in objective.student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    objective.train()
    losses = []
    for _ in range(steps):
        torch.manual_seed(123)  # the same t, noise and dropout every step: a fixed target
        loss, _ = objective(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    return losses


def test_vae_overfits_a_fixed_batch():
    from lpm_npc.model.lpm import LPM
    from lpm_npc.train.stage_vae import VAEObjective

    torch.manual_seed(0)
    # The posterior starts with unit variance (sampled latents are mostly noise) and the residual
    # branches at zero, so the first steps are slow: check a steady decrease, not a big drop.
    losses = _overfit(VAEObjective(LPM(MICRO)), _fixed_batch(frames=4), steps=24)
    assert min(losses[-3:]) < 0.97 * losses[0]
    assert sum(losses[-4:]) < sum(losses[10:14]) < sum(losses[:4])


def test_decoder_only_vae_trains_the_decoder_and_keeps_the_latents():
    import dataclasses

    from lpm_npc.model.lpm import LPM
    from lpm_npc.train.latent_data import vae_digest
    from lpm_npc.train.stage_vae import VAEObjective

    torch.manual_seed(0)
    model = LPM(MICRO)
    before = {k: v.clone() for k, v in model.vae.state_dict().items()}
    encoder_digest, whole_digest = vae_digest(model.vae, encoder_only=True), vae_digest(model.vae)
    train = dataclasses.replace(micro_train(), vae_decoder_only=True)
    objective = VAEObjective(model, train)
    assert not any(p.requires_grad for p in model.vae.encoder.parameters())
    losses = _overfit(objective, _fixed_batch(frames=4), steps=24)
    assert sum(losses[-4:]) < sum(losses[:4])
    after = model.vae.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("decoder."))
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k.startswith("decoder."))
    assert vae_digest(model.vae, encoder_only=True) == encoder_digest
    assert vae_digest(model.vae) != whole_digest


def test_base_overfits_a_fixed_batch():
    from lpm_npc.model.lpm import LPM
    from lpm_npc.train.stage_base import BaseObjective

    torch.manual_seed(0)
    train = micro_train()
    objective = BaseObjective(LPM(MICRO), train)
    assert not any(p.requires_grad for p in objective.student.vae.parameters())
    losses = _overfit(objective, _fixed_batch())
    assert min(losses[-3:]) < 0.7 * losses[0]


def test_whole_recipe_runs_and_exports_a_loadable_checkpoint(tmp_path):
    from lpm_npc.engine.weights import load_lpm
    from lpm_npc.judge.reader import load_judge

    train = micro_train()
    opts = RunOptions(out_dir=tmp_path / "run", steps=2, progress=False)
    results = run_recipe(train, MICRO, opts, CPU, export_dir=tmp_path / "export")
    assert list(results) == list(STAGES)
    for name, result in results.items():
        assert result.steps == 2, name
        assert math.isfinite(result.final_loss) and math.isfinite(result.first_loss), name
        assert result.samples_per_s > 0
    export = tmp_path / "export"
    names = sorted(p.name for p in export.iterdir())
    assert names == [
        "config.json",
        "judge.safetensors",
        "model.safetensors",
        "recipe.json",
        "teacher.safetensors",
    ]
    recipe = json.loads((export / "recipe.json").read_text())
    assert recipe["model_stage"] == "refiner" and recipe["data_seed"] == train.data_seed
    assert set(recipe["final_losses"]) == set(STAGES) and recipe["git_commit"]
    cfg, model = load_lpm(export)
    assert cfg == MICRO
    # The VAE stage measured latent statistics; the later stages kept them.
    assert not torch.allclose(model.vae.latent_std, torch.ones_like(model.vae.latent_std))
    assert load_judge(export).net.image_size == 64
    # Resuming a finished run re-trains nothing.
    again = run_recipe(
        train,
        MICRO,
        RunOptions(out_dir=tmp_path / "run", steps=2, resume=True, progress=False),
        CPU,
    )
    assert all(r.steps == 2 for r in again.values())


def test_stage_needs_its_predecessor(tmp_path):
    from lpm_npc.train.recipe import run_named_stage

    with pytest.raises(FileNotFoundError, match="vae"):
        run_named_stage(micro_train(), MICRO, "base", RunOptions(out_dir=tmp_path, steps=1), CPU)
