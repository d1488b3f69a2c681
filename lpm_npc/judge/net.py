"""JudgeNet: a small CNN that reads motion parameters back from one RGB frame (SyncNet's role).

Input: frames (B, 3, S, S) in [-1, 1], S = `TrainConfig.judge_size` (callers resize). Output: every
scalar channel of `synth.motion.SCALAR_RANGES`, normalised to [0, 1] by its range, and logits over
`synth.motion.EXPRESSIONS`. Targets are built from a `Motion` by `motion_targets`, readings are
turned back into physical units by `denormalise`.

The net is trained by `lpm_npc.train.stage_judge` and used by `lpm_npc.judge.reader` (bench, CLI).
It lives outside `lpm_npc.model` on purpose: the generator must never depend on its own judge.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES, Motion

SCALAR_NAMES: tuple[str, ...] = tuple(SCALAR_RANGES)
_LO = np.array([SCALAR_RANGES[n][0] for n in SCALAR_NAMES], np.float32)
_HI = np.array([SCALAR_RANGES[n][1] for n in SCALAR_NAMES], np.float32)


def motion_targets(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """(scalars (T, n_scalars) in [0, 1], expression distribution (T, n_expressions))."""
    raw = np.stack([getattr(motion, n) for n in SCALAR_NAMES], axis=1).astype(np.float32)
    scalars = np.clip((raw - _LO) / (_HI - _LO), 0.0, 1.0)
    weights = np.clip(motion.expression.astype(np.float32), 0.0, None)
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-6)
    return scalars, weights


def denormalise(scalars: np.ndarray) -> np.ndarray:
    """(T, n_scalars) in [0, 1] -> physical units of SCALAR_RANGES."""
    return _LO + np.asarray(scalars, np.float32) * (_HI - _LO)


def _down(c_in: int, c_out: int, kernel: int, refine: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
    ]
    if refine:
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
    return nn.Sequential(*layers)


class JudgeNet(nn.Module):
    """Five stride-2 stages to a 4x4 map, flattened (position matters: mouth vs eyes), two heads."""

    def __init__(self, image_size: int = 128, width: int = 32) -> None:
        super().__init__()
        if image_size % 32 != 0:
            raise ValueError(f"judge image_size must be a multiple of 32, got {image_size}")
        self.image_size = image_size
        widths = (width, width * 2, width * 3, width * 4, width * 4)
        layers, c_in = [], 3
        for i, c_out in enumerate(widths):
            # No second conv at full resolution: it would cost a quarter of the judge's FLOPs.
            layers.append(_down(c_in, c_out, 4 if i == 0 else 3, refine=i > 0))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = image_size // 32
        self.trunk = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, 256), nn.SiLU(), nn.Dropout(0.1)
        )
        self.scalar_head = nn.Linear(256, len(SCALAR_NAMES))
        self.expression_head = nn.Linear(256, len(EXPRESSIONS))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # frames: (B, 3, S, S) in [-1, 1] -> scalars (B, n_scalars) in [0, 1], logits (B, n_expr)
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            raise ValueError(
                f"judge frames must be {self.image_size}x{self.image_size}, got {tuple(frames.shape)}"
            )
        hidden = self.trunk(self.features(frames))
        return torch.sigmoid(self.scalar_head(hidden)), self.expression_head(hidden)


def judge_loss(
    net_out: tuple[torch.Tensor, torch.Tensor],
    scalars: torch.Tensor,
    expression: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE on the normalised scalars (x10 so it weighs like the CE) + soft-target expression CE."""
    pred_scalars, logits = net_out
    mse = torch.mean((pred_scalars - scalars) ** 2)
    ce = torch.mean(torch.sum(-expression * torch.log_softmax(logits, dim=-1), dim=-1))
    return 10.0 * mse + ce, {"mse": float(mse.detach()), "ce": float(ce.detach())}


def frames_to_input(frames: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float (T, 3, S, S) in [-1, 1], area-resized to S."""
    tensor = torch.as_tensor(np.asarray(frames)) if not torch.is_tensor(frames) else frames
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got shape {tuple(tensor.shape)}")
    x = tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = nn.functional.interpolate(x, size=(image_size, image_size), mode="area")
    return x
