"""Rectified-flow schedule: noising, targets, shifted timesteps, Euler and few-step samplers.

Conventions (every function here uses them):
- `x_t = (1 - t) * x0 + t * noise`, t in [0, 1]; t = 0 is clean data, t = 1 pure noise.
- velocity `v = dx_t/dt = noise - x0`, so `x0 = x_t - t * v` and `noise = x_t + (1 - t) * v`.
- Timestep shift (resolution / SNR shift of SD3 and Wan): `t' = s * t / (1 + (s - 1) * t)`; s > 1
  spends more of the schedule at high noise.
- `t` may be a float, a (B,) tensor (per row), or a (B, T) tensor per latent frame on latents
  (B, C, T, h, w) (diffusion forcing: every latent frame has its own noise level).
- Randomness only comes from explicit `torch.Generator`s; a list of generators draws each batch
  row from its own generator (one per session), so a session's noise never depends on who else
  shares the batch.

This module has no parameters and does not call a network; samplers take a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

GeneratorLike = torch.Generator | Sequence[torch.Generator] | None
T_DISTRIBUTIONS = ("logit_normal", "uniform")


def _as_t(t: float | Tensor, x: Tensor) -> Tensor:
    """Broadcast t onto x: scalar; (B,) per row; (B, T) per latent frame of (B, C, T, h, w)."""
    if not isinstance(t, Tensor):
        return torch.tensor(t, dtype=x.dtype, device=x.device)
    t = t.to(device=x.device, dtype=x.dtype)
    if t.dim() == 0:
        return t
    if t.dim() == 1 and t.shape[0] == x.shape[0]:
        return t.reshape(-1, *([1] * (x.dim() - 1)))
    if t.dim() == 2 and x.dim() == 5 and t.shape == (x.shape[0], x.shape[2]):
        return t[:, None, :, None, None]
    raise ValueError(
        f"t: expected a scalar, (B,) or (B, T) for latents (B, C, T, h, w); "
        f"got t {tuple(t.shape)} for x {tuple(x.shape)}"
    )


def shift_timesteps(t: Tensor | float, shift: float) -> Tensor | float:
    """t' = s * t / (1 + (s - 1) * t); maps [0, 1] onto [0, 1] monotonically."""
    if shift <= 0:
        raise ValueError(f"shift: must be > 0, got {shift}")
    return shift * t / (1.0 + (shift - 1.0) * t)


def randn(
    shape: Sequence[int],
    generator: GeneratorLike = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise; a list of generators gives row i from generator i (drawn on CPU)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise ValueError(f"generator: {len(gens)} generators for a batch of {shape[0]} rows")
    rows = [torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype) for g in gens]
    return torch.stack(rows).to(device)


def sample_timesteps(
    batch: int,
    generator: GeneratorLike = None,
    dist: str = "logit_normal",
    *,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(batch,) training timesteps in (0, 1): logit-normal (sigmoid of N(mean, std)) or uniform,
    then shifted by `shift` (1.0 = no shift)."""
    if dist == "logit_normal":
        t = torch.sigmoid(mean + std * randn((batch,), generator, device=device))
    elif dist == "uniform":
        if generator is None or isinstance(generator, torch.Generator):
            t = torch.rand((batch,), generator=generator, device=device)
        else:
            t = torch.stack([torch.rand((), generator=g) for g in generator]).to(device)
    else:
        raise ValueError(f"dist: expected one of {T_DISTRIBUTIONS}, got {dist!r}")
    return shift_timesteps(t, shift) if shift != 1.0 else t


def add_noise(x0: Tensor, noise: Tensor, t: float | Tensor) -> Tensor:
    """x_t = (1 - t) * x0 + t * noise."""
    tt = _as_t(t, x0)
    return (1.0 - tt) * x0 + tt * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """v = noise - x0 (constant along the straight path)."""
    return noise - x0


def x0_from_velocity(x_t: Tensor, v: Tensor, t: float | Tensor) -> Tensor:
    return x_t - _as_t(t, x_t) * v


def noise_from_velocity(x_t: Tensor, v: Tensor, t: float | Tensor) -> Tensor:
    return x_t + (1.0 - _as_t(t, x_t)) * v


def velocity_from_x0(x_t: Tensor, x0: Tensor, t: float | Tensor, eps: float = 1e-4) -> Tensor:
    """v = (x_t - x0) / t (t clamped to >= eps: at t = 0 the velocity is undefined)."""
    return (x_t - x0) / _as_t(t, x_t).clamp(min=eps)


def euler_step(x_t: Tensor, v: Tensor, t: float | Tensor, t_next: float | Tensor) -> Tensor:
    """One Euler step of the flow ODE from t to t_next (t_next < t when denoising)."""
    return x_t + (_as_t(t_next, x_t) - _as_t(t, x_t)) * v


def timesteps_for_steps(n_steps: int, shift: float = 1.0) -> Tensor:
    """(n_steps + 1,) float32 levels from 1 down to 0, uniformly spaced then shifted."""
    if n_steps < 1:
        raise ValueError(f"n_steps: must be >= 1, got {n_steps}")
    t = torch.linspace(1.0, 0.0, n_steps + 1, dtype=torch.float64)
    return shift_timesteps(t, shift).float()


def sampling_timesteps(n_steps: int, shift: float = 1.0) -> Tensor:
    """Alias of `timesteps_for_steps` (the name the backbone and generator use)."""
    return timesteps_for_steps(n_steps, shift)


def renoise(
    x0_hat: Tensor,
    t_next: float | Tensor,
    generator: GeneratorLike = None,
    noise: Tensor | None = None,
) -> Tensor:
    """Few-step (DMD / Self-Forcing) transition: x_{t_next} = (1 - t_next) x0_hat + t_next * eps,
    with fresh eps from `generator` (or the given `noise`)."""
    if noise is None:
        noise = randn(x0_hat.shape, generator, device=x0_hat.device, dtype=x0_hat.dtype)
    return add_noise(x0_hat, noise, t_next)


def sample_euler(
    predict_velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, timesteps: Tensor
) -> Tensor:
    """Deterministic Euler ODE sampler: `predict_velocity(x_t, t (B,)) -> v`; returns x0."""
    x = noise
    b = noise.shape[0]
    for t, t_next in zip(timesteps[:-1].tolist(), timesteps[1:].tolist()):
        tt = torch.full((b,), t, device=noise.device, dtype=noise.dtype)
        x = euler_step(x, predict_velocity(x, tt), t, t_next)
    return x


def sample_few_step(
    predict_x0: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    timesteps: Tensor,
    generator: GeneratorLike = None,
) -> Tensor:
    """Distilled sampler: predict x0 at each level, re-noise with fresh noise to the next level.

    `timesteps` runs from 1 to 0 (e.g. `timesteps_for_steps(n, shift)`); the last x0 is returned.
    Deterministic given `noise` and `generator`.
    """
    x = noise
    b = noise.shape[0]
    x0 = noise
    levels = timesteps.tolist()
    for i, t in enumerate(levels[:-1]):
        tt = torch.full((b,), t, device=noise.device, dtype=noise.dtype)
        x0 = predict_x0(x, tt)
        t_next = levels[i + 1]
        if t_next > 0:
            x = renoise(x0, t_next, generator)
    return x0
