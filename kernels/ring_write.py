"""Ring write: one chunk's K/V of every batch row into each row's own ring storage, in one launch.

Today `HistoryBatch.write` loops over rows (two copies per row per layer) into each ring's scratch,
and `HistoryRing.commit` copies the scratch into the next slot. This op replaces the row loop: row
r's (H, L*P, D) keys/values land at tokens [slot[r]*L*P, (slot[r]+1)*L*P) of `ring_keys[r]` /
`ring_values[r]` (each (H, K, D), e.g. `ring.scratch_keys[layer]` with slot 0 or
`ring.keys[layer]` with the slot to fill), wherever those tensors live, cast to their dtype.

With `rope` the keys are stored roped at their chunk-local positions (f, h, w): the "local" ring
layout. Attention over such a ring must be told (`StreamingKeys(history_roped=True)`) and then
applies only the remaining (-chunks_back * L, 0, 0) rotation, which skips the spatial rope of every
history key at every step. The default (no `rope`) keeps the DESIGN layout: keys stored un-roped.

Layouts: keys, values (B, H, L*P, D), any strides with a unit last stride.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from lpm_npc.model.rope import apply_rope

from .dispatch import use_triton
from .streaming_rope import StreamingRope


def check_ring_write(
    keys: Tensor,
    values: Tensor,
    ring_keys: Sequence[Tensor],
    ring_values: Sequence[Tensor],
    slots: Sequence[int],
) -> None:
    """Shapes and ranges shared by the reference and the kernel; raises ValueError naming the field."""
    if keys.dim() != 4 or values.shape != keys.shape:
        raise ValueError(
            f"keys/values must both be (B, H, L*P, D), got {keys.shape}, {values.shape}"
        )
    b, h, tokens, d = keys.shape
    for name, rows in (("ring_keys", ring_keys), ("ring_values", ring_values), ("slots", slots)):
        if len(rows) != b:
            raise ValueError(f"{name}: {len(rows)} rows for a batch of {b}")
    for row, (rk, rv, slot) in enumerate(zip(ring_keys, ring_values, slots)):
        for name, x in (("ring_keys", rk), ("ring_values", rv)):
            if x.dim() != 3 or x.shape[0] != h or x.shape[2] != d:
                raise ValueError(f"{name}[{row}] must be (H={h}, K, D={d}), got {tuple(x.shape)}")
            if not 0 <= slot or (slot + 1) * tokens > x.shape[1]:
                raise ValueError(
                    f"slots[{row}] = {slot} outside [0, {x.shape[1] // tokens}) for {name}[{row}]"
                )
            if x.device != keys.device:
                raise ValueError(f"{name}[{row}] is on {x.device}, keys on {keys.device}")


def ring_write_reference(
    keys: Tensor,
    values: Tensor,
    ring_keys: Sequence[Tensor],
    ring_values: Sequence[Tensor],
    slots: Sequence[int],
    *,
    rope: StreamingRope | None = None,
) -> None:
    """Torch reference: a copy per row (keys roped at chunk-local positions first if `rope`)."""
    check_ring_write(keys, values, ring_keys, ring_values, slots)
    tokens = keys.shape[2]
    if rope is not None:
        keys = apply_rope(keys, rope.table(rope.current_positions(tokens, keys.device)))
    for row, slot in enumerate(slots):
        span = slice(slot * tokens, (slot + 1) * tokens)
        ring_keys[row][:, span].copy_(keys[row].detach())
        ring_values[row][:, span].copy_(values[row].detach())


def ring_write(
    keys: Tensor,
    values: Tensor,
    ring_keys: Sequence[Tensor],
    ring_values: Sequence[Tensor],
    slots: Sequence[int],
    *,
    rope: StreamingRope | None = None,
) -> None:
    """Dispatch: the Triton kernel on CUDA (or when forced), the torch reference elsewhere."""
    keys, values = keys.detach(), values.detach()  # the ring never carries gradients
    if use_triton(keys, values):
        from . import ring_write_triton  # imports triton: only when the kernel runs

        ring_write_triton.ring_write_triton(keys, values, ring_keys, ring_values, slots, rope=rope)
        return
    ring_write_reference(keys, values, ring_keys, ring_values, slots, rope=rope)
