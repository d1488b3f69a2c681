"""Explicit streaming state of causal convolutions: the last inputs each causal conv has seen.

Contract:
- A `CausalConvCache` holds one preallocated tensor ("slot") per causal temporal convolution, batch
  first. The VAE decoder's slots are `(B, k - 1, H, W, C)` (channels last, the layout its temporal
  convs read); the audio encoder's are `(B, C, past)`. Shapes are fixed when the cache is made, so a
  compiled step function never sees a new shape.
- Every row (batch element) is an independent stream: nothing mixes rows, so a scheduler may run
  sessions that started at different times in one batch, `select` a subset of rows, `merge` caches
  of several batches, and write rows back with `write_rows`.
- A fresh or `reset` cache is all zeros: a causal conv treats the time before the first frame as
  zero input (left zero padding), exactly as the full-clip pass does.

This module does not run any convolution; `model/vae.py` and `model/audio.py` read and advance the
slots.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _rows_index(rows: Sequence[int] | Tensor, device: torch.device) -> Tensor:
    """Rows as a LongTensor on `device`; accepts a list, a LongTensor or a BoolTensor mask."""
    index = torch.as_tensor(rows, device=device)
    if index.dtype == torch.bool:
        index = index.nonzero().flatten()
    return index.long()


class CausalConvCache:
    """Past-frame state of every causal temporal conv of one decoder, for a batch of streams."""

    def __init__(self, slots: list[Tensor]) -> None:
        if not slots:
            raise ValueError("slots: a causal conv cache needs at least one slot")
        batch = slots[0].shape[0]
        for i, slot in enumerate(slots):
            if slot.dim() < 2 or slot.shape[0] != batch:
                raise ValueError(
                    f"slots[{i}]: expected batch-first (B={batch}, ...), got {tuple(slot.shape)}"
                )
        self.slots = slots  # slots[i]: (B, ...) past inputs of causal conv i

    @classmethod
    def zeros(
        cls,
        shapes: Sequence[tuple[int, ...]],
        batch: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> CausalConvCache:
        """A zero cache; `shapes[i]` is the per-row shape of slot i (without the batch)."""
        if batch < 1:
            raise ValueError(f"batch: must be >= 1, got {batch}")
        return cls([torch.zeros((batch, *s), device=device, dtype=dtype) for s in shapes])

    @property
    def batch(self) -> int:
        return self.slots[0].shape[0]

    @property
    def nbytes(self) -> int:
        return sum(s.numel() * s.element_size() for s in self.slots)

    def reset(self) -> None:
        """Forget the past of every row (in place; shapes and storage are kept)."""
        for slot in self.slots:
            slot.zero_()

    def reset_rows(self, rows: Sequence[int] | Tensor) -> None:
        """Forget the past of the given rows only (a session that restarts)."""
        index = _rows_index(rows, self.slots[0].device)
        for slot in self.slots:
            slot.index_fill_(0, index, 0.0)

    def select(self, rows: Sequence[int] | Tensor) -> CausalConvCache:
        """A new cache holding copies of the given rows, in the given order."""
        index = _rows_index(rows, self.slots[0].device)
        return type(self)([slot.index_select(0, index) for slot in self.slots])

    def write_rows(self, rows: Sequence[int] | Tensor, source: CausalConvCache) -> None:
        """Copy all rows of `source` into `rows` of this cache (the inverse of `select`)."""
        index = _rows_index(rows, self.slots[0].device)
        if index.numel() != source.batch or len(source.slots) != len(self.slots):
            raise ValueError(
                f"source: expected {index.numel()} rows and {len(self.slots)} slots, "
                f"got {source.batch} rows and {len(source.slots)} slots"
            )
        for slot, src in zip(self.slots, source.slots):
            slot.index_copy_(0, index, src)

    @classmethod
    def merge(cls, caches: Sequence[CausalConvCache]) -> CausalConvCache:
        """Concatenate the rows of several caches of the same decoder (batch of sessions)."""
        if not caches:
            raise ValueError("caches: need at least one cache to merge")
        n_slots = len(caches[0].slots)
        if any(len(c.slots) != n_slots for c in caches):
            raise ValueError("caches: all caches must come from the same decoder")
        return cls([torch.cat([c.slots[i] for c in caches]) for i in range(n_slots)])

    def split(self) -> list[CausalConvCache]:
        """One single-row cache per row (copies)."""
        return [self.select([i]) for i in range(self.batch)]


class DecodeCache(CausalConvCache):
    """State of `VideoVAE.decode_step`: made by `VideoVAE.init_decode_cache(batch)`."""
