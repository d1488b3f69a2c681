"""torch.distributed set-up for training: one process per device, launched by `torchrun`.

`init_distributed(device)` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); without it,
training runs as a single process and nothing is initialised. Backend: gloo on CPU, nccl on CUDA.
Rank 0 alone writes checkpoints and progress; every rank sees a distinct shard of the data.

This module does not wrap models (the loop wraps its objective in DDP) and never spawns processes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int  # global rank
    world_size: int  # processes in the job
    local_rank: int  # rank on this host (CUDA device index)
    device: torch.device  # device this process trains on

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str) -> torch.device:
    """'cpu' | 'cuda' | 'cuda:N' | 'auto' -> torch.device (error names the field if unavailable)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: CUDA is not available on this machine (use cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")
    return torch.device(device)


def init_distributed(device: str = "cpu") -> DistInfo:
    """Initialise the process group if launched by torchrun; otherwise a single-process DistInfo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device)
    if target.type == "cuda":
        target = torch.device("cuda", local_rank if world_size > 1 else (target.index or 0))
        torch.cuda.set_device(target)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("rank %d/%d on %s (%s)", rank, world_size, target, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_max(value: float, info: DistInfo) -> float:
    """The max of a float over all ranks (so every rank takes the same stop / LR decision)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _comm_device(info: DistInfo) -> torch.device:
    # nccl only moves CUDA tensors; gloo only CPU tensors.
    return info.device if info.device.type == "cuda" else torch.device("cpu")
