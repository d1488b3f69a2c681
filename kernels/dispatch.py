"""The one switch that decides whether an op runs its Triton kernel or its torch reference.

Backends:
- "auto" (default): the Triton kernel when every tensor is on a CUDA device and triton imports,
  the torch reference otherwise (CPU inference, machines without triton).
- "triton": always the kernel. On CPU tensors that only works under the Triton interpreter
  (`TRITON_INTERPRET=1` set before the kernel modules are imported); otherwise it raises, so a test
  that forces the kernel can never silently fall back to the reference.
- "reference": always the torch reference.

Chosen, in order, by `force_backend(...)` (a context manager for tests and benchmarks), then by the
`LPM_NPC_KERNELS` environment variable, then "auto". This module imports neither triton nor the
kernels, so importing it (and the model code that calls the dispatch) stays cheap.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

BACKENDS: tuple[str, ...] = ("auto", "triton", "reference")
ENV_VAR = "LPM_NPC_KERNELS"

_forced: list[str] = []  # a stack, so nested force_backend blocks restore the outer choice


def _check(name: str, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{where} must be one of {BACKENDS}, got {name!r}")
    return name


def backend() -> str:
    """The backend in force now: the innermost `force_backend`, else $LPM_NPC_KERNELS, else auto."""
    if _forced:
        return _forced[-1]
    return _check(os.environ.get(ENV_VAR, "auto") or "auto", f"${ENV_VAR}")


@contextmanager
def force_backend(name: str) -> Iterator[None]:
    """Run the enclosed ops on `name` ("auto", "triton" or "reference")."""
    _forced.append(_check(name, "backend"))
    try:
        yield
    finally:
        _forced.pop()


def triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreter_requested() -> bool:
    """True when the Triton interpreter is switched on (it must be before kernels are imported)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def use_triton(*tensors: torch.Tensor) -> bool:
    """Should an op over `tensors` run its Triton kernel? Raises if "triton" is forced but cannot run.

    The kernels are forward-only: where autograd would need their backward (a self-rollout
    training step through the streaming path), "auto" picks the reference.
    """
    choice = backend()
    if choice == "reference":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if choice == "auto":
        return on_cuda and triton_importable() and not needs_grad
    if needs_grad:
        raise RuntimeError("the Triton kernels are forward-only; a tensor here requires grad")
    if not triton_importable():
        raise RuntimeError(f"{ENV_VAR}/force_backend asks for 'triton' but triton is not installed")
    if not on_cuda and not interpreter_requested():
        raise RuntimeError(
            "the Triton kernel was forced on CPU tensors; set TRITON_INTERPRET=1 before importing "
            "lpm_npc.kernels (the interpreter) or move the tensors to a CUDA device"
        )
    return True
