"""The model's VAE as a frame degrader: round-trip uint8 video through it.

`round_trip_frames(vae, frames)`: uint8 (T, H, W, 3) -> uint8 (T, H, W, 3) through encode (the
  posterior mean) and decode, in independent segments of `segment_frames` frames (the VAE is causal
  with a short temporal reach, so segments only differ from one long pass near their starts). The
VAE comes from `model.vae.load_frozen_vae`.

Used by the judge stage (training augmentation), the judge calibration and the quality bench's
`vae` rung. It trains nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def round_trip_frames(vae: nn.Module, frames: np.ndarray, segment_frames: int = 64) -> np.ndarray:
    """uint8 (T, H, W, 3) -> the same frames encoded and decoded by `vae` (see module docstring).

    T need not be a multiple of the temporal stride: the last frame is repeated to fill the last
    group and the padding is dropped again.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    stride = int(vae.cfg.temporal_stride)
    if segment_frames < stride or segment_frames % stride:
        raise ValueError(
            f"segment_frames must be a positive multiple of {stride}, got {segment_frames}"
        )
    n = len(frames)
    if n == 0:
        return frames.copy()
    pad = (-n) % stride
    padded = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)]) if pad else frames
    out = np.empty_like(padded)
    device = next(vae.parameters()).device
    for start in range(0, len(padded), segment_frames):
        part = torch.from_numpy(padded[start : start + segment_frames]).to(device)
        video = part.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # (1, 3, T, H, W)
        decoded = vae.decode(vae.encode(video))[0].clamp(-1, 1)  # (3, T, H, W)
        pixels = ((decoded.permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8)
        out[start : start + segment_frames] = pixels.cpu().numpy()
    return out[:n]
