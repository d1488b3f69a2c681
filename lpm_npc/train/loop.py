"""The training loop every stage shares.

A stage hands the loop a `StageObjective` (an nn.Module whose `forward(batch)` returns the loss and a
few float metrics, and whose `student` attribute is the module being trained and saved), a
map-style dataset and its collate function. The loop owns everything else:
AdamW over the student's trainable parameters, linear warm-up then a flat LR that decays linearly
over the last `lr_decay_frac` of the budget (the budget is steps, minutes, or whichever ends first),
an EMA shadow of the trained weights, grad clipping, DDP, a tqdm bar on stderr, resumable
checkpoints every `checkpoint_minutes` (or every N steps), and the stage outputs:
`<out>/<stage>/final.safetensors` (the student's state dict with EMA weights) and `result.json`.

Determinism: sample k of step s on rank r is dataset index `(s * world + r) * batch + k`, and the
global torch RNG is re-seeded from (seed, step, rank) before every step, so a run resumed from a
checkpoint draws exactly the data and noise an uninterrupted run would have drawn.

The loop knows nothing about what a stage computes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lpm_npc.config import StageConfig
from lpm_npc.train.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from lpm_npc.train.distributed import DistInfo, all_reduce_max, barrier

log = logging.getLogger(__name__)


class StageObjective(nn.Module):
    """What a stage trains. Subclasses set `self.student` and implement `forward`."""

    student: nn.Module

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class LoopOptions:
    """How to run one stage (from the command line), on top of its StageConfig."""

    out_dir: Path  # run directory; the stage writes into out_dir/<stage>/
    minutes: float = 0.0  # wall-clock budget for this stage; 0 = no time limit
    max_steps: int = 0  # optimizer-step budget; 0 = no step limit
    resume: bool = False  # continue from the newest checkpoint of this stage if there is one
    workers: int = 0  # DataLoader worker processes
    seed: int = 0  # seeds the per-step noise
    progress: bool = True  # tqdm bar on stderr (rank 0)
    checkpoint_every_steps: int = 0  # also checkpoint every N steps (0 = only by time)
    amp: bool = False  # bf16 autocast (CUDA only; on this CPU it made training slower)
    compile: bool = False  # torch.compile the objective (helped on CPU, costs a warm-up)
    stop_after_step: int = 0  # tests: return abruptly after this step, as if killed


@dataclass(frozen=True)
class StageResult:
    """What one stage did (written to result.json and into the exported recipe)."""

    stage: str  # stage name
    steps: int  # optimizer steps done in total
    samples: int  # samples consumed in total (all ranks)
    seconds: float  # training wall-clock seconds in total
    samples_per_s: float  # throughput of the last session (all ranks together)
    first_loss: float  # mean loss over the first steps of the last session
    final_loss: float  # mean loss over the last steps
    stopped_by: str  # "steps" | "time"
    resumed_from_step: int  # 0 when the stage started fresh
    world_size: int  # processes that trained
    device: str  # device type that trained


class StepSampler(Sampler[int]):
    """Endless dataset indices for one rank, starting at `start_step` (see module docstring)."""

    def __init__(
        self, start_step: int, batch_size: int, rank: int, world_size: int, length: int
    ) -> None:
        self.start_step, self.batch_size = start_step, batch_size
        self.rank, self.world_size = rank, world_size
        self.length = length  # indices wrap around a finite dataset

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = (step * self.world_size + self.rank) * self.batch_size
            yield from (i % self.length for i in range(base, base + self.batch_size))
            step += 1

    def __len__(self) -> int:  # DataLoader only needs this for len(loader); we never ask
        return 2**62


def lr_at(cfg: StageConfig, step: int, progress: float) -> float:
    """Warm-up over `warmup_steps`, flat, then linear decay over the last `lr_decay_frac`."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    decay_start = 1.0 - cfg.lr_decay_frac
    if cfg.lr_decay_frac > 0 and progress > decay_start:
        frac = min(1.0, (progress - decay_start) / cfg.lr_decay_frac)
        lr *= 1.0 - (1.0 - cfg.lr_final_frac) * frac
    return lr


def to_device(batch, device: torch.device):
    """Move every tensor in a (nested) dataclass / dict / list batch to `device`."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {
            f.name: to_device(getattr(batch, f.name), device) for f in dataclasses.fields(batch)
        }
        return dataclasses.replace(batch, **changes)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def ema_state_dict(student: nn.Module, ema: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The student's state dict with every EMA-tracked parameter replaced by its average."""
    state = {k: v.detach() for k, v in student.state_dict().items()}
    for name, value in ema.items():
        state[name] = value.detach().to(state[name].dtype)
    return state


def _progress(state: TrainerState, max_steps: int, budget_s: float) -> float:
    by_steps = state.step / max_steps if max_steps else 0.0
    by_time = state.elapsed_s / budget_s if budget_s else 0.0
    return max(by_steps, by_time)


def stage_dir(out_dir: Path, stage: str) -> Path:
    return Path(out_dir) / stage


def completed_result(out_dir: Path, stage: str) -> StageResult | None:
    """The stored result of a finished stage, or None."""
    path = stage_dir(out_dir, stage)
    if (path / "result.json").is_file() and (path / "final.safetensors").is_file():
        return StageResult(**json.loads((path / "result.json").read_text()))
    return None


def run_stage(
    objective: StageObjective,
    dataset: Dataset,
    collate: Callable | None,
    cfg: StageConfig,
    opts: LoopOptions,
    info: DistInfo,
    finish: Callable[[], None] | None = None,
) -> StageResult | None:
    """Train one stage to its budget; returns None only when `stop_after_step` cut it short.

    `finish` runs after the student holds its EMA weights and before `final.safetensors` is written
    (e.g. the VAE measures its latent statistics there).
    """
    if opts.max_steps <= 0 and opts.minutes <= 0:
        raise ValueError("a stage needs a budget: --steps > 0 or --minutes > 0")
    out = stage_dir(opts.out_dir, cfg.name)
    ckpt_root = out / "ckpt"
    student = objective.student
    objective.to(info.device)
    named = {n: p for n, p in student.named_parameters() if p.requires_grad}
    if not named:
        raise ValueError(f"stage {cfg.name}: the student has no trainable parameters")
    optimizer = torch.optim.AdamW(
        list(named.values()), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    ema = {n: p.detach().clone() for n, p in named.items()}
    state = TrainerState(stage=cfg.name, step=0, samples=0, elapsed_s=0.0)
    resumed_from = 0
    latest = latest_checkpoint(ckpt_root) if opts.resume else None
    if latest is not None:
        state, loaded = load_checkpoint(latest, module=student, optimizer=optimizer)
        ema = {n: loaded[n].to(info.device) for n in named}
        resumed_from = state.step
        log.info("stage %s: resumed from %s (step %d)", cfg.name, latest, state.step)

    model: nn.Module = objective
    if opts.compile:
        model = torch.compile(model)
    if info.enabled:
        # find_unused_parameters: condition dropout and stage-specific paths skip some weights.
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=True
        )

    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=StepSampler(
            state.step,
            cfg.batch_size,
            info.rank,
            info.world_size,
            len(dataset),  # type: ignore[arg-type]
        ),
        num_workers=opts.workers,
        collate_fn=collate,
        persistent_workers=False,
        prefetch_factor=2 if opts.workers > 0 else None,
    )
    batches = iter(loader)
    budget_s = opts.minutes * 60.0
    from tqdm import tqdm

    bar = tqdm(
        total=opts.max_steps or None,
        initial=state.step,
        desc=f"train {cfg.name}",
        file=sys.stderr,
        disable=not (opts.progress and info.is_main),
        dynamic_ncols=True,
    )
    recent: deque[float] = deque(state.recent_losses, maxlen=50)
    first: list[float] = []
    session_start, session_samples = time.monotonic(), 0
    last_ckpt = time.monotonic()
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if opts.amp and info.device.type == "cuda"
        else contextlib.nullcontext()
    )
    objective.train()
    stopped_by = "steps"
    while True:
        progress = _progress(state, opts.max_steps, budget_s)
        if progress >= 1.0:
            stopped_by = "steps" if opts.max_steps and state.step >= opts.max_steps else "time"
            break
        t0 = time.monotonic()
        lr = lr_at(cfg, state.step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = to_device(next(batches), info.device)
        torch.manual_seed(opts.seed * 1_000_003 + state.step * info.world_size + info.rank)
        with autocast:
            loss, metrics = model(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"stage {cfg.name}: non-finite loss at step {state.step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(list(named.values()), cfg.grad_clip)
        optimizer.step()
        # Early in training the EMA follows closely, so short runs still export useful weights.
        decay = min(cfg.ema_decay, (1.0 + state.step) / (10.0 + state.step))
        with torch.no_grad():
            for name, param in named.items():
                ema[name].lerp_(param.detach(), 1.0 - decay)
        loss_value = float(loss.detach())
        recent.append(loss_value)
        if len(first) < 10:
            first.append(loss_value)
        step_s = all_reduce_max(time.monotonic() - t0, info)
        state = dataclasses.replace(
            state,
            step=state.step + 1,
            samples=state.samples + cfg.batch_size * info.world_size,
            elapsed_s=state.elapsed_s + step_s,
            recent_losses=tuple(recent),
        )
        session_samples += cfg.batch_size * info.world_size
        bar.update(1)
        if info.is_main and bar.n % 5 == 1:
            shown = {k: f"{v:.3g}" for k, v in list(metrics.items())[:3]}
            bar.set_postfix(
                loss=f"{loss_value:.4g}", lr=f"{lr:.2g}", gn=f"{float(grad_norm):.2g}", **shown
            )
        due_by_time = time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60.0
        due_by_steps = opts.checkpoint_every_steps and state.step % opts.checkpoint_every_steps == 0
        if info.is_main and (due_by_time or due_by_steps):
            save_checkpoint(ckpt_root, module=student, ema=ema, optimizer=optimizer, state=state)
            last_ckpt = time.monotonic()
        if opts.stop_after_step and state.step >= opts.stop_after_step:
            bar.close()
            return None
    bar.close()
    session_s = max(1e-9, time.monotonic() - session_start)
    result = StageResult(
        stage=cfg.name,
        steps=state.step,
        samples=state.samples,
        seconds=round(state.elapsed_s, 2),
        samples_per_s=round(session_samples / session_s, 3),
        first_loss=_mean(first) if first else _mean(state.recent_losses[:10]),
        final_loss=_mean(list(recent)[-20:]),
        stopped_by=stopped_by,
        resumed_from_step=resumed_from,
        world_size=info.world_size,
        device=info.device.type,
    )
    if info.is_main:
        save_checkpoint(ckpt_root, module=student, ema=ema, optimizer=optimizer, state=state)
    # The student leaves holding its EMA weights: that is what the next stage starts from.
    with torch.no_grad():
        for name, param in named.items():
            param.copy_(ema[name])
    if finish is not None:
        objective.eval()
        finish()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        final = {
            k: v.detach().to("cpu").contiguous().clone() for k, v in student.state_dict().items()
        }
        save_file(final, str(out / "final.safetensors"))
        write_json_atomic(out / "result.json", dataclasses.asdict(result))
        log.info("stage %s done: %s", cfg.name, result)
    barrier(info)
    return result


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else math.nan
