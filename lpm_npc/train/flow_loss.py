"""Flow-matching pieces the training stages share.

Convention (as in `model.backbone`): x_t = (1 - t) x0 + t noise, t = 1 is pure noise. Time is drawn
logit-normal (t = sigmoid(N(mean, std))), which DESIGN §7 found to train best on this CPU. The
network predicts x0 (`cfg.prediction == "x0"`) and is trained with the *velocity* loss
|v_hat - v|^2 where v = noise - x0 and v_hat = (x_t - x0_hat) / t, i.e. the x0 error weighted by
1 / t^2 (capped, so t -> 0 cannot blow up). With `prediction == "v"` it is the plain v loss.

This module does not run any network.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MIN_T = 0.05  # floor of t in the 1/t velocity weighting


def sample_t(shape: tuple[int, ...], mean: float, std: float, device: torch.device) -> Tensor:
    """Logit-normal diffusion times in (0, 1)."""
    return torch.sigmoid(torch.randn(shape, device=device) * std + mean)


def add_noise(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x0, noise: (B, C, T, h, w); t: (B, T) per latent frame -> x_t."""
    tt = t[:, None, :, None, None].to(x0.dtype)
    return (1.0 - tt) * x0 + tt * noise


def velocity_error(
    x0_hat: Tensor, x0: Tensor, t: Tensor, region_weight: Tensor | None = None
) -> Tensor:
    """Per-latent-frame velocity MSE (B, T) of an x0 prediction: mean over C, h, w of
    ((x0_hat - x0) / max(t, MIN_T))^2 (equal to |v_hat - v|^2 for x_t built from x0).

    `region_weight` (B, T, h, w), mean 1 per frame, weights latent cells (face boxes)."""
    scale = t.clamp_min(_MIN_T)[:, None, :, None, None].to(x0.dtype)
    error = ((x0_hat - x0) / scale) ** 2
    if region_weight is not None:
        error = error * region_weight[:, None].to(error.dtype)
    return error.mean(dim=(1, 3, 4))


def masked_mean(values: Tensor, weight: Tensor) -> Tensor:
    """Mean of `values` (B, T) under 0/1 `weight` (B, T)."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)
