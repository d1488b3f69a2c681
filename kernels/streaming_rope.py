"""Where every key of a streaming chunk sits, and the per-axis rope tables the kernels read.

Positions (DESIGN §3, `model/backbone.py`), always relative to the current chunk, with L =
`chunk_frames` latent frames per chunk and a (gh, gw) token grid per latent frame (P = gh*gw):
    current chunk token n          (n // P,               (n % P) // gw, n % gw)
    history slot s, chunk token n  (n // P - back[s] * L, (n % P) // gw, n % gw),  back = chunks_back
    reference token n              (reference_time,       (n % P) // gw, n % gw)   reference_time = L-1+offset
A ring slot holds one chunk (L*P tokens); a reference holds one latent frame (P tokens).

`Rope3D` rotates pair j of a head by pos[axis(j)] * freq[j], where the first `time_pairs` pairs
follow t, the next `spatial_pairs` follow h and the last `spatial_pairs` follow w. Each angle
depends on one axis only, so a handful of rows hold every cos/sin a kernel can need:
    rows [0, n_time)                  t = time_min + row         (time pairs meaningful)
    rows [n_time, n_time + gh)        h = row - n_time           (h pairs meaningful)
    rows [n_time + gh, ... + gw)      w = row - n_time - gh      (w pairs meaningful)
A kernel gathers column j of a key from the row of that column's axis. The rows are computed by
`Rope3D.table` itself (float64 angles, float32 cos/sin), so they are bit-identical to the tables the
backbone builds; they are a few KB and stay in L1/L2 while the kernel streams keys.

This module computes positions and tables only; it does no attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lpm_npc.model.rope import Rope3D, RopeTable, token_positions


@dataclass(frozen=True)
class StreamingRope:
    """Rope geometry of one DiT's streaming step plus its per-axis cos/sin rows on one device."""

    cos: Tensor  # (n_time + gh + gw, D/2) float32, rows as in the module docstring
    sin: Tensor  # (n_time + gh + gw, D/2) float32
    grid: tuple[int, int]  # (gh, gw) tokens per latent frame along h and w
    chunk_frames: int  # L: latent frames per chunk and per ring slot
    reference_time: int  # temporal position of every reference token (L - 1 + reference_offset)
    time_min: int  # t of row 0: -(history_slots * L), the oldest ring slot's first frame
    time_pairs: int  # rotation pairs that follow t (the first ones)
    spatial_pairs: int  # rotation pairs that follow h, then as many that follow w
    rope: Rope3D = field(compare=False, repr=False)  # the model's rope (used by the references)
    # RopeTables of the torch reference path, by (segment, tokens, device): shapes only, so reused
    # by every step (the backbone's own table cache did the same).
    _tables: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        rope: Rope3D,
        grid: tuple[int, int],
        chunk_frames: int,
        reference_offset: int,
        history_slots: int,
        device: torch.device | str,
    ) -> StreamingRope:
        """Tables for a DiT with `rope`, a (gh, gw) grid, L = `chunk_frames` and a ring of
        `history_slots` chunks (references `reference_offset` frames after the chunk's last)."""
        if chunk_frames < 1 or history_slots < 0:
            raise ValueError(
                f"chunk_frames must be >= 1 and history_slots >= 0, got {chunk_frames}, "
                f"{history_slots}"
            )
        gh, gw = grid
        reference_time = chunk_frames - 1 + reference_offset
        time_min = min(-history_slots * chunk_frames, 0)
        time_max = max(chunk_frames - 1, reference_time)
        n_time = time_max - time_min + 1
        positions = torch.zeros(n_time + gh + gw, 3, dtype=torch.int64)
        positions[:n_time, 0] = torch.arange(time_min, time_max + 1)
        positions[n_time : n_time + gh, 1] = torch.arange(gh)
        positions[n_time + gh :, 2] = torch.arange(gw)
        table = rope.table(positions.to(device))
        time_pairs, spatial_pairs, _ = rope.split
        return cls(
            cos=table.cos.contiguous(),
            sin=table.sin.contiguous(),
            grid=(gh, gw),
            chunk_frames=chunk_frames,
            reference_time=reference_time,
            time_min=time_min,
            time_pairs=time_pairs,
            spatial_pairs=spatial_pairs,
            rope=rope,
        )

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tokens_per_slot(self) -> int:
        """Tokens of one ring slot (one chunk of L latent frames)."""
        return self.chunk_frames * self.tokens_per_frame

    @property
    def n_time_rows(self) -> int:
        return self.cos.shape[0] - self.grid[0] - self.grid[1]

    @property
    def head_dim(self) -> int:
        return 2 * self.cos.shape[1]

    # --- positions (used by the torch references and the tests) ------------------------------
    def current_positions(self, n_tokens: int, device: torch.device) -> Tensor:
        """(n_tokens, 3): the current chunk's tokens, frame-major."""
        frames = self._frames(n_tokens, "current chunk")
        return token_positions(frames, *self.grid, device=device)

    def reference_positions(self, n_tokens: int, device: torch.device) -> Tensor:
        """(n_tokens, 3): every reference on the target grid at `reference_time`."""
        per_ref = token_positions(1, *self.grid, t0=self.reference_time, device=device)
        return per_ref.repeat(self._frames(n_tokens, "references"), 1)

    def history_positions(self, chunks_back: Tensor, *, roped_local: bool = False) -> Tensor:
        """chunks_back: (B, S) -> (B, S*L*P, 3), slot s at time f - back*L relative to the chunk.

        `roped_local`: keys were already roped at their chunk-local (f, h, w) when written
        (`ring_write(..., rope=...)`), so only the remaining (-back*L, 0, 0) is left to apply.
        """
        device = chunks_back.device
        local = token_positions(self.chunk_frames, *self.grid, device=device)  # (L*P, 3)
        if roped_local:
            local = torch.zeros_like(local)
        offsets = torch.zeros(*chunks_back.shape, 1, 3, dtype=torch.int64, device=device)
        offsets[..., 0] = -chunks_back.to(torch.int64)[..., None] * self.chunk_frames
        return (local[None, None] + offsets).flatten(1, 2)

    def table(self, positions: Tensor) -> RopeTable:
        """The model's own rope table of `positions` ((N, 3) or (B, N, 3))."""
        return self.rope.table(positions)

    def current_table(self, n_tokens: int, device: torch.device) -> RopeTable:
        """Rope table of the current chunk's tokens (cached)."""
        return self._cached(("current", n_tokens, device), self.current_positions, n_tokens, device)

    def reference_table(self, n_tokens: int, device: torch.device) -> RopeTable:
        """Rope table of `n_tokens` reference tokens (cached)."""
        key = ("reference", n_tokens, device)
        return self._cached(key, self.reference_positions, n_tokens, device)

    def _cached(self, key: tuple, positions, n_tokens: int, device: torch.device) -> RopeTable:
        if key not in self._tables:
            if len(self._tables) > 64:  # many distinct shapes: start over
                self._tables.clear()
            self._tables[key] = self.table(positions(n_tokens, device))
        return self._tables[key]

    def _frames(self, n_tokens: int, what: str) -> int:
        per_frame = self.tokens_per_frame
        if n_tokens % per_frame:
            raise ValueError(
                f"{what}: {n_tokens} tokens is not a whole number of {self.grid} latent frames "
                f"({per_frame} tokens each)"
            )
        return n_tokens // per_frame
