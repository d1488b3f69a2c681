"""Rectified-flow schedule: the noise levels of a sampler, noising, and the x0-form Euler step.

Conventions (everything in the project that samples uses them):
- `x_t = (1 - t) * x0 + t * noise`, t in [0, 1]; t = 0 is clean data, t = 1 pure noise.
- velocity `v = dx_t/dt = noise - x0`; a network that predicts x0 gives `v = (x_t - x0) / t`.
- Timestep shift (resolution / SNR shift of SD3 and Wan): `t' = s * t / (1 + (s - 1) * t)`; s > 1
  spends more of the schedule at high noise.
- Samplers walk `sampling_timesteps(n, shift)` from 1 down to 0 with `euler_step_x0`, the one
  Euler step of the flow ODE written with an x0 prediction (the streaming backbone, the teacher and
  the training rollout all step with it).

This module has no parameters, draws no randomness and calls no network.
"""

from __future__ import annotations

import torch
from torch import Tensor


def shift_timesteps(t: Tensor | float, shift: float) -> Tensor | float:
    """t' = s * t / (1 + (s - 1) * t); maps [0, 1] onto [0, 1] monotonically."""
    if shift <= 0:
        raise ValueError(f"shift: must be > 0, got {shift}")
    return shift * t / (1.0 + (shift - 1.0) * t)


def sampling_timesteps(n_steps: int, shift: float = 1.0) -> Tensor:
    """(n_steps + 1,) float32 levels from 1 down to 0, uniformly spaced then shifted."""
    if n_steps < 1:
        raise ValueError(f"n_steps: must be >= 1, got {n_steps}")
    t = torch.linspace(1.0, 0.0, n_steps + 1, dtype=torch.float64)
    return shift_timesteps(t, shift).float()


def add_noise(x0: Tensor, noise: Tensor, level: float) -> Tensor:
    """x_t = (1 - level) * x0 + level * noise (one noise level for the whole tensor)."""
    return (1.0 - level) * x0 + level * noise


def euler_step_x0(x: Tensor, x0: Tensor, level: float, next_level: float) -> Tensor:
    """One Euler step of the flow ODE from `level` to `next_level` given the x0 prediction at x:
    x_next = x0 + (next_level / level) * (x - x0); at next_level = 0 it lands on x0 exactly."""
    return x0 + (next_level / level) * (x - x0)
