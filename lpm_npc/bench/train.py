"""`lpm-npc bench train`: where a training step's time goes, as ratios measured in one run.

For one LPM stage (default `base`) at one batch size, three pipelines run the same objective with
the same optimizer for the same number of timed steps (after warm-up steps):
- cache:  batches read from the latent dataset (`--data`, or a small one built for the bench),
- render: batches rendered live by `ClipDataset` and encoded by the frozen VAE (the old pipeline),
- dit:    one in-memory batch, encoded once, reused every step (the bare DiT forward + backward).
The pipelines take turns step by step, so drift over the run falls on all three alike. Reported:
samples/s of each, `cache_vs_render` and `cache_vs_dit`. Data loading runs in the main process (no
workers), so the ratios say what the pipeline costs the training process itself.

This module only measures; it trains nothing that is kept.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lpm_npc.config import ModelConfig, TrainConfig

BENCH_STAGES = ("base", "causal")  # stages whose objective needs no teacher


@dataclass(frozen=True)
class TrainBench:
    stage: str
    batch_size: int
    steps: int
    threads: int
    cache_samples_per_s: float
    render_samples_per_s: float
    dit_samples_per_s: float
    cache_vs_render: float
    cache_vs_dit: float
    data_dir: str


def _objective(stage: str, model_cfg: ModelConfig, train: TrainConfig, init: dict | None):
    from lpm_npc.train.stage import StageContext

    ctx = StageContext(
        train=train,
        model=model_cfg,
        stage=train.stage(stage),
        out_dir=Path(tempfile.gettempdir()),
        device=torch.device("cpu"),
        init_state=init,
        teacher_state=None,
        data_dir=None,
    )
    module = importlib.import_module(f"lpm_npc.train.stage_{stage}")
    return module.build(ctx).objective


def _interleaved_steps(objective, pipelines: dict, warmup: int, steps: int) -> dict[str, float]:
    """Seconds each pipeline spent in its `steps` timed optimizer steps (each: next batch, forward,
    backward, AdamW step). The pipelines take turns step by step (cache, render, dit, cache, ...),
    so drift over the run (allocator warm-up, clock, other load) falls on all of them alike; run
    one after the other, the first one measured paid for the warm-up of the process."""
    params = [p for p in objective.student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    objective.train()
    seconds = dict.fromkeys(pipelines, 0.0)
    for i in range(warmup + steps):
        for name, batches in pipelines.items():
            start = time.perf_counter()
            batch = next(batches)
            loss, _ = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i >= warmup:
                seconds[name] += time.perf_counter() - start
    return seconds


def _indices(batch_size: int, offset: int):
    step = 0
    while True:
        yield [offset + step * batch_size + k for k in range(batch_size)]
        step += 1


def bench_train(
    *,
    stage: str = "base",
    data_dir: Path | None = None,
    checkpoint: Path | None = None,
    batch_size: int | None = None,
    steps: int = 4,
    warmup: int = 1,
    threads: int | None = None,
    progress: bool = False,
    train: TrainConfig | None = None,
) -> TrainBench:
    """The three pipelines of the module docstring, `steps` timed steps each. `train` defaults to
    the `tiny` recipe (its preset must match the checkpoint's weights)."""
    from safetensors.torch import load_file

    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.train.batch import clip_dataset, collate_clips
    from lpm_npc.train.latent_data import LatentDataset

    if stage not in BENCH_STAGES:
        raise ValueError(f"stage must be one of {BENCH_STAGES}, got {stage!r}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got {steps}, {warmup}")
    if threads is not None:
        torch.set_num_threads(threads)
    train = train or TrainConfig.from_name("tiny")
    cfg = ModelConfig.from_name(train.preset)
    stage_cfg = train.stage(stage)
    batch = batch_size or stage_cfg.batch_size
    weights = Path(checkpoint or default_checkpoint_dir()) / "model.safetensors"
    init = {k: v.float() for k, v in load_file(str(weights)).items()}
    objective = _objective(stage, cfg, train, init)
    with tempfile.TemporaryDirectory() as tmp:
        if data_dir is None:
            from lpm_npc.train.latent_build import BuildOptions, build_latent_dataset

            data_dir = Path(tmp) / "latents"
            build_latent_dataset(
                BuildOptions(
                    out_dir=data_dir,
                    vae_path=weights,
                    preset=train.preset,
                    n_characters=4,
                    conversations_per_character=1,
                    seconds_per_conversation=6.0,
                    workers=1,
                ),
                progress=progress,
            )
        latent = LatentDataset(data_dir, stage_cfg.clip_frames, seed=train.data_seed)
        from lpm_npc.train.latent_data import check_vae

        check_vae(latent.manifest, objective.student.vae)
        renders = clip_dataset(_Ctx(train, cfg), stage_cfg.clip_frames)
        fixed = collate_clips([renders[i] for i in range(batch)])
        pipelines = {
            "cache": (collate_clips([latent[i] for i in idx]) for idx in _indices(batch, 0)),
            "render": (collate_clips([renders[i] for i in idx]) for idx in _indices(batch, batch)),
            "dit": _repeat(_pre_encoded(objective.student, fixed)),
        }
        seconds = _interleaved_steps(objective, pipelines, warmup, steps)
    cache_s, render_s, dit_s = seconds["cache"], seconds["render"], seconds["dit"]
    n = batch * steps
    cache, render, dit = n / cache_s, n / render_s, n / dit_s
    return TrainBench(
        stage=stage,
        batch_size=batch,
        steps=steps,
        threads=torch.get_num_threads(),
        cache_samples_per_s=round(cache, 3),
        render_samples_per_s=round(render, 3),
        dit_samples_per_s=round(dit, 3),
        cache_vs_render=round(cache / render, 3),
        cache_vs_dit=round(cache / dit, 3),
        data_dir=str(data_dir),
    )


@dataclass(frozen=True)
class _Ctx:
    """The two fields `clip_dataset` reads from a StageContext."""

    train: TrainConfig
    model: ModelConfig


def _pre_encoded(model, batch):
    """The batch with its latents filled in (what the DiT-only pipeline reuses every step)."""
    import dataclasses

    from lpm_npc.train.batch import encode_pixels

    x0, refs = encode_pixels(model, batch)
    return dataclasses.replace(batch, latents=x0, reference_latents=refs)


def _repeat(batch):
    while True:
        yield batch


def as_dict(result: TrainBench) -> dict:
    return asdict(result)
