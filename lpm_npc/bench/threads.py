"""`--threads N` of the benchmark and serve commands: torch intra-op threads, checked once."""

from __future__ import annotations


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (None = leave torch's default); refuse < 1."""
    if threads is None:
        return
    from lpm_npc.errors import UserError

    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
