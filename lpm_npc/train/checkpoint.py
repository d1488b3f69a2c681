"""Resumable training checkpoints in safetensors (no pickle), written atomically.

A checkpoint is a directory `step_00000123/` holding
- `model.safetensors`  the trained module's full state dict (raw, un-averaged weights),
- `ema.safetensors`    the EMA shadow of every trainable parameter,
- `optim.safetensors`  every tensor of the optimizer state, flattened to `state.<param>.<key>`,
- `trainer.json`       step, samples, elapsed seconds, recent losses, optimizer param groups and the
                       non-tensor optimizer state, Python/NumPy RNG state, and free-form `extra`,
- `rng.safetensors`    torch (and CUDA) RNG states.
It is written into a temporary sibling directory and renamed into place, so a kill at any moment
leaves either the previous checkpoint or the new one, never a half-written one. Older checkpoints
beyond `keep` are pruned after the rename.

This module does not decide *when* to checkpoint (see `loop.py`) and does not know about stages.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

_STEP_PREFIX = "step_"


@dataclass(frozen=True)
class TrainerState:
    """Progress counters of one stage; what resuming needs besides tensors."""

    stage: str  # stage name
    step: int  # optimizer steps done
    samples: int  # training samples consumed, all processes together
    elapsed_s: float  # training wall-clock seconds spent so far (summed over resumes)
    recent_losses: tuple[float, ...] = ()  # last losses, for the final-loss report
    extra: dict = field(default_factory=dict)  # stage-specific json-able values


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone detaches views of tied weights.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_tensors_atomic(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write one safetensors file through a temp file + rename (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(_contiguous(tensors), tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; exported weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write a json file through a temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state(
        (kind, tensors["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, gauss)
    )
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(_STEP_PREFIX) and (p / "trainer.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(_STEP_PREFIX) :]))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_checkpoint(
    root: Path,
    *,
    module: torch.nn.Module,
    ema: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainerState,
    keep: int = 2,
) -> Path:
    """Write `root/step_<step>/` atomically and prune all but the newest `keep` checkpoints."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_STEP_PREFIX}{state.step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        save_file(_contiguous(module.state_dict()), str(tmp / "model.safetensors"))
        save_file(_contiguous(ema), str(tmp / "ema.safetensors"))
        optim_tensors, optim_meta = _flatten_optimizer(optimizer)
        save_file(_contiguous(optim_tensors), str(tmp / "optim.safetensors"))
        rng_tensors, rng_meta = _rng_state()
        save_file(_contiguous(rng_tensors), str(tmp / "rng.safetensors"))
        payload = {"trainer": asdict(state), "optimizer": optim_meta, "rng": rng_meta}
        (tmp / "trainer.json").write_text(json.dumps(payload, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint %s written", final)
    return final


def load_checkpoint(
    path: Path,
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> tuple[TrainerState, dict[str, torch.Tensor]]:
    """Load a checkpoint into `module` (and `optimizer`); returns (state, ema tensors)."""
    path = Path(path)
    payload = json.loads((path / "trainer.json").read_text())
    module.load_state_dict(load_file(str(path / "model.safetensors")))
    ema = load_file(str(path / "ema.safetensors"))
    if optimizer is not None:
        tensors = load_file(str(path / "optim.safetensors"))
        optimizer.load_state_dict(_unflatten_optimizer(tensors, payload["optimizer"]))
    if restore_rng:
        _restore_rng(load_file(str(path / "rng.safetensors")), payload["rng"])
    raw = payload["trainer"]
    raw["recent_losses"] = tuple(raw.get("recent_losses", ()))
    return TrainerState(**raw), ema
