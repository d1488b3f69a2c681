"""3D rotary position embedding over (t, h, w) token positions.

Contract: `Rope3D(head_dim, theta)` turns integer token positions `(N, 3)` (or `(B, N, 3)`) into a
`RopeTable` of cos/sin, and `apply_rope(x, table)` rotates a `(B, H, N, D)` tensor with it. The head
dimension is split into three groups of rotation pairs, one per axis (time gets the remainder, as in
Wan-family DiTs), so a query and a key at positions p and p' interact through p - p' only: that is
what lets the streaming path rope history keys relative to the current chunk (positions never grow)
while the training pass ropes them at absolute positions, with the same result.

Also here: `token_positions(...)`, the (t, h, w) grid of patchified latent frames. This module does
not decide *which* positions references or history get; the backbone does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class RopeTable:
    """cos/sin for a set of token positions: each (N, D/2) or (B, 1, N, D/2), float32."""

    cos: Tensor
    sin: Tensor


def token_positions(
    n_frames: int, height: int, width: int, *, t0: int = 0, device: torch.device | None = None
) -> Tensor:
    """(t, h, w) integer positions of `n_frames` patchified frames, frame-major: (n_frames*h*w, 3)."""
    t = torch.arange(t0, t0 + n_frames, device=device)
    h = torch.arange(height, device=device)
    w = torch.arange(width, device=device)
    grid = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), dim=-1)  # (T, h, w, 3)
    return grid.reshape(-1, 3)


class Rope3D(nn.Module):
    """Frequencies of the three axes; no learned parameters."""

    def __init__(self, head_dim: int, theta: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")
        pairs = head_dim // 2
        spatial_pairs = pairs // 3
        time_pairs = pairs - 2 * spatial_pairs
        self.split = (time_pairs, spatial_pairs, spatial_pairs)

        def axis_freqs(n: int) -> Tensor:
            return 1.0 / (theta ** (torch.arange(n, dtype=torch.float64) * 2 / max(2 * n, 1)))

        # Kept in float64 so angles of large absolute positions (training pass) stay accurate.
        freqs = [axis_freqs(n) for n in self.split]
        self.register_buffer("freqs_t", freqs[0], persistent=False)
        self.register_buffer("freqs_h", freqs[1], persistent=False)
        self.register_buffer("freqs_w", freqs[2], persistent=False)

    def table(self, positions: Tensor) -> RopeTable:
        """positions: (N, 3) or (B, N, 3) integers -> cos/sin (N, D/2) or (B, 1, N, D/2)."""
        pos = positions.to(torch.float64)
        angles = torch.cat(
            [
                pos[..., 0:1] * self.freqs_t.to(pos.device),
                pos[..., 1:2] * self.freqs_h.to(pos.device),
                pos[..., 2:3] * self.freqs_w.to(pos.device),
            ],
            dim=-1,
        )
        if angles.dim() == 3:
            angles = angles.unsqueeze(1)  # (B, 1, N, D/2): broadcast over heads
        return RopeTable(cos=angles.cos().float(), sin=angles.sin().float())


def apply_rope(x: Tensor, table: RopeTable) -> Tensor:
    """Rotate x (B, H, N, D) by the table's angles (rotate-half layout); returns x's dtype."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos = table.cos.to(x.dtype)
    sin = table.sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
