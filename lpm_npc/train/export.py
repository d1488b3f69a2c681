"""Export a finished run as a checkpoint directory that `engine.weights.load_lpm()` reads.

Output (`dest/`):
- `config.json`       `{"preset": name, "overrides": {field: value}}` (fields differing from the preset),
- `model.safetensors` the LPM state dict of the last finished model stage (normally `refiner`),
                      floating tensors cast to `TrainConfig.export_dtype` (fp16 by default),
- `judge.safetensors` the judge's weights (same dtype), read by bench and `lpm-npc judge`,
- `teacher.safetensors` the Base LPM's backbone and encoders (the `base` stage; same dtype), read
                      by `bench quality` for the student-teacher gap (the VAE is shared),
- `recipe.json`       the training recipe, data seeds, per-stage steps / samples / seconds / losses,
                      the files stages were warm-started from (`warm_starts`), git commit, device,
                      torch version.
The total must stay under `max_bytes` (40 MB: the default is committed to the repository).

This module does not train; it reads `<run>/<stage>/final.safetensors` and `result.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lpm_npc.config import ModelConfig, TrainConfig
from lpm_npc.judge.net import JudgeNet
from lpm_npc.judge.reader import JUDGE_FILE, net_for_state, save_judge
from lpm_npc.train.checkpoint import save_tensors_atomic, write_json_atomic
from lpm_npc.train.distributed import DistInfo
from lpm_npc.train.loop import StageResult, completed_result, stage_dir
from lpm_npc.train.recipe import WARM_START_FILE

log = logging.getLogger(__name__)

MAX_EXPORT_BYTES = 40 * 1024 * 1024
TEACHER_FILE = "teacher.safetensors"
EXPORT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def model_overrides(model: ModelConfig) -> dict:
    """Init fields of `model` that differ from its named preset (json-able)."""
    try:
        preset = ModelConfig.from_name(model.name)
    except KeyError:
        preset = None
    out = {}
    for f in dataclasses.fields(model):
        if not f.init or f.name == "name":
            continue
        value = getattr(model, f.name)
        if preset is None or value != getattr(preset, f.name):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def write_judge(dest: Path, judge_state: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    """`dest/judge.safetensors` from a judge stage's state dict, floats cast to `dtype`."""
    net = net_for_state(judge_state)  # an adopted judge (train/adopt.py) may be a legacy one
    net.load_state_dict(judge_state)
    if isinstance(net, JudgeNet):
        save_judge(dest / JUDGE_FILE, net, _cast(judge_state, dtype))
    else:
        meta = {"image_size": str(net.image_size), "width": str(net.width)}
        save_tensors_atomic(dest / JUDGE_FILE, _cast(judge_state, dtype), metadata=meta)


def export_checkpoint(
    run_dir: Path,
    dest: Path,
    train: TrainConfig,
    model: ModelConfig,
    results: dict[str, StageResult] | None = None,
    info: DistInfo | None = None,
    max_bytes: int = MAX_EXPORT_BYTES,
) -> Path:
    """Write the checkpoint directory `dest` from the finished stages of `run_dir`."""
    run_dir, dest = Path(run_dir), Path(dest)
    results = dict(results or {})
    for stage in train.stages:
        if stage.name not in results:
            done = completed_result(run_dir, stage.name)
            if done is not None:
                results[stage.name] = done
    model_stage = next(
        (s.name for s in reversed(train.stages) if s.name != "judge" and s.name in results), None
    )
    if model_stage is None:
        raise FileNotFoundError(f"no finished model stage under {run_dir}; nothing to export")
    if "judge" not in results:
        raise FileNotFoundError(f"the judge stage has not finished under {run_dir}")
    dtype = EXPORT_DTYPES[train.export_dtype]
    dest.mkdir(parents=True, exist_ok=True)
    lpm_state = _cast(load_file(str(stage_dir(run_dir, model_stage) / "final.safetensors")), dtype)
    save_tensors_atomic(dest / "model.safetensors", lpm_state, metadata={"stage": model_stage})
    write_judge(dest, load_file(str(stage_dir(run_dir, "judge") / "final.safetensors")), dtype)
    if "base" in results:
        base = load_file(str(stage_dir(run_dir, "base") / "final.safetensors"))
        parts = ("backbone.", "audio_encoder.", "text_encoder.")
        teacher = {k: v for k, v in base.items() if k.startswith(parts)}
        save_tensors_atomic(dest / TEACHER_FILE, _cast(teacher, dtype), metadata={"stage": "base"})
    write_json_atomic(
        dest / "config.json", {"preset": model.name, "overrides": model_overrides(model)}
    )
    recipe = {
        "preset": model.name,
        "model_overrides": model_overrides(model),
        "model_stage": model_stage,
        "train_config": dataclasses.asdict(train),
        "data_seed": train.data_seed,
        "judge_seed": train.judge_seed,
        "stages": {name: dataclasses.asdict(r) for name, r in results.items()},
        "final_losses": {name: r.final_loss for name, r in results.items()},
        "git_commit": git_commit(),
        "device": (info.device.type if info else next(iter(results.values())).device),
        "world_size": info.world_size if info else next(iter(results.values())).world_size,
        "torch": torch.__version__,
        "export_dtype": train.export_dtype,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    warm = {}
    for name in results:
        path = stage_dir(run_dir, name) / WARM_START_FILE
        if path.is_file():
            warm[name] = json.loads(path.read_text())
    if warm:
        recipe["warm_starts"] = warm
    write_json_atomic(dest / "recipe.json", recipe)
    total = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    if total > max_bytes:
        raise ValueError(
            f"exported checkpoint is {total / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit"
        )
    log.info("exported %s (%.1f MiB) from stage %s", dest, total / 2**20, model_stage)
    return dest


def read_recipe(checkpoint_dir: Path) -> dict:
    return json.loads((Path(checkpoint_dir) / "recipe.json").read_text())
