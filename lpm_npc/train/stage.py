"""The interface between the recipe runner and one stage module (`stage_<name>.py`).

Each stage module exposes `build(ctx: StageContext) -> StageSetup`: it constructs its objective
(student + frozen teacher, if any) from the weights the recipe hands it, and its dataset. The loop
(`loop.py`) then trains it; the recipe (`recipe.py`) chains stages and exports.

This module holds only the two dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lpm_npc.config import ModelConfig, StageConfig, TrainConfig
from lpm_npc.train.loop import StageObjective


@dataclass(frozen=True)
class StageContext:
    """What a stage needs to build itself."""

    train: TrainConfig  # the whole recipe (shared knobs)
    model: ModelConfig  # shape of the LPM being trained
    stage: StageConfig  # this stage's hyper-parameters
    out_dir: Path  # run directory
    device: torch.device  # training device
    init_state: dict[str, torch.Tensor] | None  # student weights from the previous stage (or None)
    teacher_state: dict[str, torch.Tensor] | None  # Base LPM weights for distillation stages
    data_dir: Path | None = None  # latent dataset the LPM stages read (None = render live)


@dataclass(frozen=True)
class StageSetup:
    """A built stage: objective (nn.Module), map-style dataset, collate function."""

    objective: StageObjective
    dataset: Dataset
    collate: Callable | None
    finish: Callable[[], None] | None = None  # runs on the EMA weights before the final save
