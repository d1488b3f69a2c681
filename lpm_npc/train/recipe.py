"""The distillation recipe: which stage starts from which weights, and running stages in order.

Chain (each stage's student starts from the EMA weights of the stage before it):
    vae -> base (Base LPM teacher) -> causal -> ode -> rollout -> refiner;   judge stands alone.
The distillation stages (ode, rollout, refiner) also load the `base` output as a frozen teacher.
Numbers (budgets, batch sizes, LRs) live in `config.TrainConfig`; `minutes_scale` stretches every
stage's time budget (e.g. 0.02 turns the ~7 h CPU recipe into ~8 min on one H100).

`run_named_stage` trains one stage (resuming if asked, skipping a stage already finished when
resuming); `run_recipe` runs them all and exports the default checkpoint (`export.py`).
This module does not implement any stage's objective.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from lpm_npc.config import ModelConfig, TrainConfig
from lpm_npc.digest import file_sha256
from lpm_npc.train.checkpoint import write_json_atomic
from lpm_npc.train.distributed import DistInfo
from lpm_npc.train.loop import LoopOptions, StageResult, completed_result, run_stage, stage_dir
from lpm_npc.train.stage import StageContext

log = logging.getLogger(__name__)

# Stage -> the stage whose final weights initialise its student (None = fresh init).
STAGE_INIT: dict[str, str | None] = {
    "vae": None,
    "judge": None,
    "base": "vae",
    "causal": "base",
    "ode": "causal",
    "rollout": "ode",
    "refiner": "rollout",
}
TEACHER_STAGE = "base"
NEEDS_TEACHER = frozenset({"ode", "rollout", "refiner"})
WARM_START_FILE = "warm_start.json"
MODEL_STAGES: tuple[str, ...] = ("vae", "base", "causal", "ode", "rollout", "refiner")


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices shared by every stage of one run."""

    out_dir: Path  # run directory
    resume: bool = False  # continue interrupted stages, skip finished ones
    minutes: float | None = None  # per-stage minutes override (None = recipe minutes * scale)
    minutes_scale: float = 1.0  # multiplies every recipe stage budget
    steps: int | None = None  # per-stage step cap override (None = recipe max_steps)
    workers: int = 0  # DataLoader workers per process
    seed: int = 0  # noise seed
    progress: bool = True  # tqdm bars
    checkpoint_every_steps: int = 0  # extra step-based checkpoints
    amp: bool = False  # bf16 autocast on CUDA
    init_from: Path | None = (
        None  # warm start: a safetensors of the stage's student (e.g. an export)
    )
    compile: bool = False  # torch.compile the objective
    batch_size: int | None = None  # per-process batch override (None = recipe batch size)
    data_dir: Path | None = None  # latent dataset for the LPM stages (`lpm-npc data build`)


def final_weights(out_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    path = stage_dir(out_dir, stage) / "final.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"stage {stage!r} has no final weights at {path}; run `lpm-npc train --stage {stage}` first"
        )
    return load_file(str(path))


def warm_start_weights(path: Path) -> dict[str, torch.Tensor]:
    """A student state dict to continue from (exports are fp16: cast floats back to fp32)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--init-from: no safetensors file at {path}")
    state = load_file(str(path))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def check_decoder_fits(state: dict[str, torch.Tensor], model: ModelConfig, stage: str) -> None:
    """Refuse a warm start whose VAE decoder has other widths than the run's, naming the override
    (the `vae` stage widens a narrower decoder itself, `model.vae_widen`; other stages cannot)."""
    from lpm_npc.model.vae import decoder_channels, fit_decoder_channels

    vae_state = {k[4:]: v for k, v in state.items() if k.startswith("vae.decoder.")}
    if stage == "vae" or not vae_state:
        return
    widths = decoder_channels(fit_decoder_channels(model, vae_state))
    if widths != decoder_channels(model):
        listed = ",".join(str(w) for w in widths)
        raise ValueError(
            f"--init-from: its VAE decoder has widths {widths}, this run's {decoder_channels(model)}"
            f"; pass --model-override 'vae_decoder_channels=[{listed}]'"
        )


def record_warm_start(out_dir: Path, stage: str, path: Path) -> None:
    """`<run>/<stage>/warm_start.json`: which file the stage's student started from (the export
    copies it into recipe.json as `warm_starts`, so a continued run says what it continued)."""
    target = stage_dir(out_dir, stage) / WARM_START_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target, {"from": str(path), "sha256": file_sha256(Path(path))})


def with_concat_input(
    state: dict[str, torch.Tensor] | None, model: ModelConfig
) -> dict[str, torch.Tensor] | None:
    """Weights of an LPM without `reference_concat` made fit for one with it (a warm start from a
    run without the lever): the backbone's patch embedding gets zero weights on the front-latent
    channels, so it starts as the old model and learns to use them. Other states pass unchanged."""
    key = "backbone.patch_embed.weight"
    if state is None or not model.reference_concat or key not in state:
        return state
    weight = state[key]
    _, ph, pw = model.patch_size
    if weight.ndim != 2 or weight.shape[1] != model.latent_channels * ph * pw:
        return state  # already widened (or another shape: load_state_dict names the mismatch)
    log.info("warm start without reference_concat: front-latent patch weights start at zero")
    return {**state, key: torch.cat([weight, torch.zeros_like(weight)], dim=1)}


def loop_options(train: TrainConfig, name: str, opts: RunOptions) -> LoopOptions:
    stage = train.stage(name)
    minutes = opts.minutes if opts.minutes is not None else stage.minutes * opts.minutes_scale
    steps = opts.steps if opts.steps is not None else stage.max_steps
    return LoopOptions(
        out_dir=opts.out_dir,
        minutes=float(minutes),
        max_steps=int(steps),
        resume=opts.resume,
        workers=opts.workers,
        seed=opts.seed,
        progress=opts.progress,
        checkpoint_every_steps=opts.checkpoint_every_steps,
        amp=opts.amp,
        compile=opts.compile,
    )


def build_context(
    train: TrainConfig, model: ModelConfig, name: str, opts: RunOptions, info: DistInfo
) -> StageContext:
    init = STAGE_INIT[name]
    if opts.init_from is not None:
        init_state = warm_start_weights(opts.init_from)
        check_decoder_fits(init_state, model, name)
    else:
        init_state = final_weights(opts.out_dir, init) if init else None
    return StageContext(
        train=train,
        model=model,
        stage=train.stage(name),
        out_dir=opts.out_dir,
        device=info.device,
        init_state=with_concat_input(init_state, model),
        teacher_state=with_concat_input(
            final_weights(opts.out_dir, TEACHER_STAGE) if name in NEEDS_TEACHER else None, model
        ),
        data_dir=opts.data_dir,
    )


def run_named_stage(
    train: TrainConfig,
    model: ModelConfig,
    name: str,
    opts: RunOptions,
    info: DistInfo,
    *,
    loop_overrides: dict | None = None,
) -> StageResult | None:
    """Build and train one stage; with `resume`, a finished stage is not retrained."""
    if name not in STAGE_INIT:
        raise KeyError(f"unknown stage {name!r}; choose one of {list(STAGE_INIT)}")
    if opts.resume:
        done = completed_result(opts.out_dir, name)
        if done is not None:
            log.info("stage %s already finished (%d steps); skipping", name, done.steps)
            return done
    if opts.batch_size is not None:
        stages = tuple(
            dataclasses.replace(s, batch_size=opts.batch_size) if s.name == name else s
            for s in train.stages
        )
        train = dataclasses.replace(train, stages=stages)
    loop = loop_options(train, name, opts)
    if loop_overrides:
        loop = dataclasses.replace(loop, **loop_overrides)
    ctx = build_context(train, model, name, opts, info)
    if opts.init_from is not None and info.is_main:
        record_warm_start(opts.out_dir, name, opts.init_from)
    # Every rank builds identical initial weights (DDP also broadcasts rank 0's).
    torch.manual_seed(opts.seed)
    setup = importlib.import_module(f"lpm_npc.train.stage_{name}").build(ctx)
    return run_stage(
        setup.objective, setup.dataset, setup.collate, ctx.stage, loop, info, finish=setup.finish
    )


def run_recipe(
    train: TrainConfig,
    model: ModelConfig,
    opts: RunOptions,
    info: DistInfo,
    *,
    export_dir: Path | None = None,
) -> dict[str, StageResult]:
    """Run every stage of the recipe in order, then export the default checkpoint."""
    results: dict[str, StageResult] = {}
    for stage in train.stages:
        result = run_named_stage(train, model, stage.name, opts, info)
        assert result is not None
        results[stage.name] = result
    if info.is_main:
        from lpm_npc.train.export import export_checkpoint

        export_checkpoint(
            opts.out_dir, export_dir or Path(opts.out_dir) / "export", train, model, results, info
        )
    return results
