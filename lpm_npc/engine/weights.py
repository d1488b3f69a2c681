"""Finding and loading LPM checkpoints.

A checkpoint directory holds `config.json` (`{"preset": "tiny", "overrides": {...}}`),
`model.safetensors` (the `LPM` state dict, usually fp16/bf16; loaded into fp32 parameters) and
`recipe.json` (how it was trained; not read here). `save_lpm` writes the first two.

`default_checkpoint_dir()` is the embedded default, `samples/checkpoints/tiny` next to the package
(repository checkout) or inside it (installed copy). `load_lpm()` is the one constructor of a
model, from a checkpoint or with random weights of a named preset (`random_weights=True`; tests
use the `test` and `test-tiny` presets). It never invents weights silently: a missing checkpoint
raises `FileNotFoundError` unless `allow_random=True`, and random weights are always logged as a
warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.lpm import LPM

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RANDOM_SEED = 0  # random weights are still deterministic


def default_checkpoint_dir() -> Path:
    """`samples/checkpoints/tiny` of the repository (or of the installed package)."""
    package = Path(__file__).resolve().parent.parent  # .../lpm_npc
    candidates = [package.parent / "samples" / "checkpoints" / "tiny"]
    candidates.append(package / "samples" / "checkpoints" / "tiny")
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return candidates[0]


def read_config(checkpoint_dir: Path) -> ModelConfig:
    """config.json -> ModelConfig (preset + overrides; JSON lists become tuples)."""
    path = checkpoint_dir / CONFIG_FILE
    return config_from_data(json.loads(path.read_text()), str(path))


def config_from_data(data: dict, where: str) -> ModelConfig:
    """The parsed contents of a config.json (`where` names it in errors) -> ModelConfig."""
    if "preset" not in data:
        raise ValueError(f"{where}: field 'preset' is missing")
    overrides = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in data.get("overrides", {}).items()
    }
    return ModelConfig.from_name(data["preset"]).with_overrides(**overrides)


def checkpoint_exists(checkpoint_dir: Path) -> bool:
    return (checkpoint_dir / CONFIG_FILE).is_file() and (checkpoint_dir / WEIGHTS_FILE).is_file()


def load_lpm(
    checkpoint_dir: str | Path | None = None,
    *,
    random_weights: bool = False,
    allow_random: bool = False,
    preset: str = "tiny",
    seed: int = RANDOM_SEED,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[ModelConfig, LPM]:
    """-> (ModelConfig, LPM in eval mode, parameters in `dtype` on `device`): the one place a
    model is made, from a checkpoint or with random weights.

    `random_weights=True` ignores any checkpoint and builds preset `preset` from `seed`; otherwise
    `checkpoint_dir` (default: the embedded one) is loaded, and a missing checkpoint raises
    `FileNotFoundError` unless `allow_random` (random weights then, with a warning). Random
    weights are built directly on `device` in `dtype` (so a 17B model never exists in fp32 on the
    host) and do not disturb the global RNG.
    """
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
    if random_weights or not checkpoint_exists(directory):
        if not random_weights and not allow_random:
            raise FileNotFoundError(
                f"no checkpoint at {directory} (need {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        reason = "asked for" if random_weights else f"no checkpoint at {directory}"
        log.warning(
            "random weights (%s; preset %s): frames will not look like anyone", reason, preset
        )
        cfg = ModelConfig.from_name(preset)
        previous = torch.get_default_dtype()
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(seed)
            torch.set_default_dtype(dtype)
            try:
                model = LPM(cfg)
            finally:
                torch.set_default_dtype(previous)
        return cfg, model.to(device, dtype).eval()
    from safetensors.torch import load_file

    cfg = read_config(directory)
    model = LPM(cfg)
    state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{directory / WEIGHTS_FILE} does not match preset {cfg.name}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    log.info("loaded %s (%s)", directory, cfg.name)
    return cfg, model.to(device, dtype).eval()


def save_lpm(
    model: torch.nn.Module,
    checkpoint_dir: str | Path,
    *,
    preset: str,
    overrides: dict | None = None,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Write config.json + model.safetensors (floating tensors cast to `dtype`)."""
    from safetensors.torch import save_file

    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"preset": preset, "overrides": overrides or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    state = {
        name: (t.to(dtype) if t.is_floating_point() else t).contiguous()
        for name, t in model.state_dict().items()
    }
    save_file(state, str(directory / WEIGHTS_FILE))
    return directory
