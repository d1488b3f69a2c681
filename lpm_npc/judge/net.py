"""JudgeNet: a small CNN that reads motion parameters back from one RGB frame (SyncNet's role).

Input: frames (B, 3, S, S) in [-1, 1], S = `TrainConfig.judge_size` (callers resize). Output
(`JudgeOutput`): every scalar channel of `synth.motion.SCALAR_RANGES`, normalised to [0, 1] by its
range, logits over `synth.motion.EXPRESSIONS`, and the square face crop it looked at. Targets are
built from a `Motion` by `motion_targets`, readings are turned back into physical units by
`denormalise`.

Two streams, because at 128 px a blink or a brow raise moves ~50-200 pixels of a 16k-pixel frame:
- a coarse stream sees the whole frame at S/2 (head pose, torso, expression) and regresses the face
  crop `(cx, cy, side)` (fractions of S; trained against `synth.face_boxes` geometry);
- a face stream sees that crop resampled to `crop_size` px (eyes, brows, lips at native resolution
  or finer), so the fine features do not have to survive five stride-2 stages of the whole frame.
During training the crop may be given (the true face box, jittered); at reading time the net uses
its own regressed crop, so it reads any frame, rendered or generated, without side information.

The net is trained by `lpm_npc.train.stage_judge` and used by `lpm_npc.judge.reader` (bench, CLI).
It lives outside `lpm_npc.model` on purpose: the generator must never depend on its own judge.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from lpm_npc.synth.motion import EXPRESSIONS, SCALAR_RANGES, Motion

SCALAR_NAMES: tuple[str, ...] = tuple(SCALAR_RANGES)
_LO = np.array([SCALAR_RANGES[n][0] for n in SCALAR_NAMES], np.float32)
_HI = np.array([SCALAR_RANGES[n][1] for n in SCALAR_NAMES], np.float32)

# Typical within-conversation standard deviation of each channel (physical units): the width of
# each channel's quadratic zone in `judge_loss`. An error of one such unit costs as much on every
# channel, so a 3-degree nod matters as much as a half-open jaw (in plain range units a judge can
# ignore head pose, which moves ~5% of its range in talk), while errors far outside it pull all
# channels equally (in sd units the wide random-pose yaws would starve blinks and brows).
LOSS_SCALE: dict[str, float] = {
    "jaw_open": 0.2,
    "lip_round": 0.15,
    "lip_spread": 0.15,
    "blink_left": 0.2,
    "blink_right": 0.2,
    "brow_raise": 0.15,
    "brow_furrow": 0.2,
    "head_yaw": 5.0,
    "head_pitch": 3.0,
    "head_roll": 3.0,
    "gaze_x": 0.3,
    "gaze_y": 0.3,
    "torso_sway": 0.2,
    "breath": 0.25,
}
_SCALE = np.array([LOSS_SCALE[n] for n in SCALAR_NAMES], np.float32) / (_HI - _LO)
CROP_MARGIN = 1.15  # crop side = this x the longer side of the face box
_CROP_UNIT = 1.0 / 64  # crop regression errors count in 1/64 of the frame side (2 px at 128)


class JudgeOutput(NamedTuple):
    """scalars (B, n_scalars) in [0, 1]; logits (B, n_expr); crop (B, 3) (cx, cy, side) or None."""

    scalars: torch.Tensor
    logits: torch.Tensor
    crop: torch.Tensor | None


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


def face_crop_targets(face: np.ndarray, size: int) -> np.ndarray:
    """Pixel face boxes (T, 4) (x0, y0, x1, y1) of `size` px frames -> (T, 3) float32 crops
    (cx, cy, side) as fractions of the frame side; side = CROP_MARGIN x the longer box side."""
    face = np.asarray(face, np.float32)
    if face.ndim != 2 or face.shape[1] != 4:
        raise ValueError(f"face boxes must be (T, 4), got shape {face.shape}")
    cx = (face[:, 0] + face[:, 2]) / 2
    cy = (face[:, 1] + face[:, 3]) / 2
    side = np.maximum(face[:, 2] - face[:, 0], face[:, 3] - face[:, 1]) * CROP_MARGIN
    return (np.stack([cx, cy, side], axis=1) / float(size)).astype(np.float32)


def crop_frames(x: torch.Tensor, crop: torch.Tensor, out_size: int) -> torch.Tensor:
    """Bilinear square crops: x (B, 3, S, S), crop (B, 3) (cx, cy, side) in frame fractions ->
    (B, 3, out_size, out_size); outside the frame reads 0 (mid grey)."""
    cx, cy, side = crop[:, 0], crop[:, 1], crop[:, 2].clamp(0.05, 1.5)
    zero = torch.zeros_like(cx)
    # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1] (align_corners=False).
    theta = torch.stack(
        [torch.stack([side, zero, 2 * cx - 1], 1), torch.stack([zero, side, 2 * cy - 1], 1)], 1
    )
    grid = nn.functional.affine_grid(
        theta.to(x.dtype), [x.shape[0], 3, out_size, out_size], align_corners=False
    )
    return nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


def _down(c_in: int, c_out: int, kernel: int, refine: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
    ]
    if refine:
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
    return nn.Sequential(*layers)


def _stream(width: int, stages: int) -> tuple[nn.Sequential, int]:
    """Stride-2 stages (no second conv at full resolution: it would dominate the FLOPs)."""
    widths = [width * m for m in (1, 2, 3, 4, 4, 4)[:stages]]
    layers, c_in = [], 3
    for i, c_out in enumerate(widths):
        layers.append(_down(c_in, c_out, 4 if i == 0 else 3, refine=i > 0))
        c_in = c_out
    return nn.Sequential(*layers), c_in


def _hidden(c_in: int, flatten: bool) -> nn.Sequential:
    """[Flatten,] Linear(c_in, 256), LayerNorm, SiLU (the Linear is index 1 after a Flatten)."""
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    return nn.Sequential(*layers, nn.Linear(c_in, 256), nn.LayerNorm(256), nn.SiLU())


class JudgeNet(nn.Module):
    """Coarse whole-frame stream + face-crop stream, flattened maps (position matters), two heads.

    `image_size` S (multiple of 32) is the frame side it reads, `width` the channels of the first
    stage, `crop_size` (multiple of 32) the side the face crop is resampled to.
    """

    def __init__(self, image_size: int = 128, width: int = 32, crop_size: int = 96) -> None:
        super().__init__()
        if image_size % 32 != 0:
            raise ValueError(f"judge image_size must be a multiple of 32, got {image_size}")
        if crop_size % 32 != 0:
            raise ValueError(f"judge crop_size must be a multiple of 32, got {crop_size}")
        self.image_size, self.width, self.crop_size = image_size, width, crop_size
        # The coarse stream reads S/2 px down to a 4x4 map (S=128), the face stream crop/32.
        self.coarse, c_coarse = _stream(width, 4)
        self.face, c_face = _stream(width, 5)
        coarse_side, face_side = image_size // 32, crop_size // 32
        # A LayerNorm before every hidden SiLU: without it one large early step can push a whole
        # flattened layer's pre-activations far below zero (a run at lr 2e-3 ended with every
        # unit of both stream trunks at about -23, SiLU ~ 1e-9: constant readings, r = 0).
        self.coarse_trunk = _hidden(c_coarse * coarse_side**2, flatten=True)
        self.crop_head = nn.Linear(256, 3)
        self.face_trunk = _hidden(c_face * face_side**2, flatten=True)
        self.trunk = nn.Sequential(*_hidden(256 + 256 + 3, flatten=False), nn.Dropout(0.1))
        self.scalar_head = nn.Linear(256, len(SCALAR_NAMES))
        self.expression_head = nn.Linear(256, len(EXPRESSIONS))
        # Start the crop regression at the default framing's face (centre, ~half the frame).
        with torch.no_grad():
            self.crop_head.weight.mul_(0.1)
            self.crop_head.bias.copy_(torch.tensor([0.0, -0.1, -0.5]))

    def predict_crop(self, coarse_hidden: torch.Tensor) -> torch.Tensor:
        # (B, 256) -> (B, 3): cx, cy in (0, 1), side in (0.2, 1.2) of the frame side
        raw = self.crop_head(coarse_hidden)
        centre = torch.sigmoid(raw[:, :2])
        side = 0.2 + torch.sigmoid(raw[:, 2:])
        return torch.cat([centre, side], dim=1)

    def locate(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, 3, S, S) in [-1, 1] -> (coarse features (B, 256), regressed crop (B, 3))."""
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            raise ValueError(
                f"judge frames must be {self.image_size}x{self.image_size}, got {tuple(frames.shape)}"
            )
        half = nn.functional.avg_pool2d(frames, 2)  # (B, 3, S/2, S/2)
        coarse = self.coarse_trunk(self.coarse(half))  # (B, 256)
        return coarse, self.predict_crop(coarse)

    def read(
        self, frames: torch.Tensor, coarse: torch.Tensor, look: torch.Tensor, crop: torch.Tensor
    ) -> JudgeOutput:
        """Read the face at `look` (B, 3); `crop` is the regressed crop reported in the output."""
        face = self.face_trunk(self.face(crop_frames(frames, look, self.crop_size)))  # (B, 256)
        hidden = self.trunk(torch.cat([coarse, face, look], dim=1))
        return JudgeOutput(
            torch.sigmoid(self.scalar_head(hidden)), self.expression_head(hidden), crop
        )

    def forward(self, frames: torch.Tensor) -> JudgeOutput:
        # frames: (B, 3, S, S) in [-1, 1]; the face stream looks where the coarse stream points
        coarse, crop = self.locate(frames)
        return self.read(frames, coarse, crop.detach(), crop)


def judge_loss(
    out: JudgeOutput,
    scalars: torch.Tensor,
    expression: torch.Tensor,
    crop: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Huber loss of the range-normalised scalars with each channel's quadratic zone one
    `LOSS_SCALE` wide (so large errors pull every channel equally, as L1, while small ones are
    resolved to a fraction of a typical in-conversation movement), + soft-target expression CE,
    + (when the true crop is given and the net regresses one) smooth-L1 of the crop in
    `_CROP_UNIT`s."""
    beta = torch.as_tensor(_SCALE, device=scalars.device)
    error = (out.scalars - scalars).abs()
    huber = torch.where(error < beta, 0.5 * error**2 / beta, error - 0.5 * beta)
    scalar_loss = huber.mean() / beta.mean()
    ce = torch.mean(torch.sum(-expression * torch.log_softmax(out.logits, dim=-1), dim=-1))
    total = scalar_loss + ce
    logs = {"scalar": float(scalar_loss.detach()), "ce": float(ce.detach())}
    if crop is not None and out.crop is not None:
        crop_loss = nn.functional.smooth_l1_loss(out.crop / _CROP_UNIT, crop / _CROP_UNIT)
        total = total + crop_loss
        logs["crop"] = float(crop_loss.detach())
    return total, logs


def frames_to_input(frames: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float (T, 3, S, S) in [-1, 1], area-resized to S."""
    tensor = torch.as_tensor(np.asarray(frames)) if not torch.is_tensor(frames) else frames
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got shape {tuple(tensor.shape)}")
    return resize_input(tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0, image_size)


def resize_input(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """float (B, 3, H, W) -> (B, 3, S, S), area-resized (unchanged when already S x S)."""
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = nn.functional.interpolate(x, size=(image_size, image_size), mode="area")
    return x
