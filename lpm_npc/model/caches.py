"""Streaming caches: reference K/V (per character) and the history ring (per session).

`ReferenceCache`: per layer, the un-roped K/V of a character's reference tokens, computed once at
t=0 (`DiT.encode_references`). Immutable; shared by every session of that character. With
`ModelConfig.reference_concat` the backbone's cache also holds the front reference latent its
input concatenates (`front`, constant per character, so per session).

`HistoryRing`: per session, per layer, the K/V of the last `slots` committed chunks, preallocated
with static shapes. Keys are stored UN-roped; the backbone ropes them relative to the current chunk
(slot `s` holds the chunk `chunks_back(s)` chunks ago), so positions never grow. API:
- `write(layer, k, v)`: scratch. Every backbone pass writes its current-chunk K/V here; scratch is
  never read by attention.
- `commit()`: copies the scratch of every layer into the next slot and advances the ring. The
  generator calls it once per chunk, right after the noisy-history pass (x0 re-noised to
  `context_noise`). Denoising passes never commit.
- `reset()`, `length` (valid chunks), `pos` (chunks committed so far; a Python int, never a position).

`ReferenceBatch` / `HistoryBatch` stack the per-character / per-session objects into batch rows for
one backbone call (rows are independent; rows with fewer valid keys get a (B, 1, 1, K) key bias).
They copy rows per step (a few MB at the tiny size), which keeps each session's state simple and
lets the scheduler batch any subset of sessions.

What the torch attention path derives from them is derived once, not once per pass: roped
references once per character (`ReferenceCache.prepared`: they sit at the same position every
chunk), the [references | history] context of each layer once per step (`HistoryBatch.prepared`,
forgotten at `commit`).

This module does no attention and knows nothing of rope tables; it only says where keys came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReferenceCache:
    """Un-roped reference K/V of one character for one DiT (backbone or refiner)."""

    keys: tuple[Tensor, ...]  # per layer: (H, R*P, D)
    values: tuple[Tensor, ...]  # per layer: (H, R*P, D)
    n_references: int  # R
    tokens_per_reference: int  # P
    front: Tensor | None = None  # (C, h, w) front reference latent (backbone, reference_concat)
    # (layer, padded tokens, dtype) -> `prepared` K/V (1, H, tokens, D): the references are roped
    # at the same fixed position every chunk, so each character ropes them once, not every step
    _prepared: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_tokens(self) -> int:
        return self.n_references * self.tokens_per_reference

    def prepared(
        self,
        layer: int,
        tokens: int,
        dtype: torch.dtype,
        prepare: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    ) -> tuple[Tensor, Tensor]:
        """`prepare(keys, values)` of `layer`, zero-padded to `tokens`, as (1, H, tokens, D),
        computed once per character. `prepare` must depend only on its inputs, `tokens` and
        `dtype` (the streaming reference rope of the DiT these K/V belong to)."""
        key = (layer, tokens, dtype)
        if key not in self._prepared:
            k, v = self.keys[layer], self.values[layer]
            pad = tokens - k.shape[1]
            if pad:
                k = torch.cat([k, k.new_zeros(k.shape[0], pad, k.shape[2])], dim=1)
                v = torch.cat([v, v.new_zeros(v.shape[0], pad, v.shape[2])], dim=1)
            self._prepared[key] = prepare(k[None], v[None])
        return self._prepared[key]

    def nbytes(self) -> int:
        front = () if self.front is None else (self.front,)
        prepared = [t for kv in self._prepared.values() for t in kv]
        tensors = (*self.keys, *self.values, *front, *prepared)
        return sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())


def _key_bias(valid: list[int], total: int, like: Tensor) -> Tensor | None:
    """(B, 1, 1, total) additive bias that hides keys past each row's `valid` count, or None."""
    if all(n == total for n in valid):
        return None
    bias = torch.zeros(len(valid), 1, 1, total, dtype=like.dtype, device=like.device)
    for row, n in enumerate(valid):
        bias[row, ..., n:] = float("-inf")
    return bias


class ReferenceBatch:
    """Reference K/V of a batch of sessions (one ReferenceCache per row)."""

    def __init__(self, caches: list[ReferenceCache]) -> None:
        if not caches:
            raise ValueError("ReferenceBatch needs at least one ReferenceCache")
        self.caches = caches
        self.n_layers = len(caches[0].keys)
        self.tokens = max(c.n_tokens for c in caches)
        self._bias = _key_bias([c.n_tokens for c in caches], self.tokens, caches[0].keys[0])
        self._prepared: dict[int, tuple[Tensor, Tensor]] = {}
        fronts = [c.front for c in caches]
        # (B, C, h, w) front reference latents of the rows, or None when the caches hold none
        self.front = None if any(f is None for f in fronts) else torch.stack(fronts)

    def prepared(
        self, layer: int, prepare: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """`prepare(keys, values)` of `layer` as (B, H, Kr, D), short rows zero-padded first.
        Elementwise per token (the reference rope), so it is computed once per character
        (`ReferenceCache.prepared`) and only stacked here, once per batch object: every pass of
        one step (denoising and noisy-history) reuses it."""
        if layer not in self._prepared:
            dtype = self.caches[0].keys[layer].dtype
            rows = [c.prepared(layer, self.tokens, dtype, prepare) for c in self.caches]
            if len(rows) == 1:
                self._prepared[layer] = rows[0]
            else:
                self._prepared[layer] = (
                    torch.cat([k for k, _ in rows]),
                    torch.cat([v for _, v in rows]),
                )
        return self._prepared[layer]

    def keys_values(self, layer: int) -> tuple[Tensor, Tensor]:
        """(B, H, Kr, D) un-roped keys and values of `layer`; short rows are zero-padded."""
        ks, vs = [], []
        for cache in self.caches:
            k, v = cache.keys[layer], cache.values[layer]
            pad = self.tokens - k.shape[1]
            if pad:
                k = torch.cat([k, k.new_zeros(k.shape[0], pad, k.shape[2])], dim=1)
                v = torch.cat([v, v.new_zeros(v.shape[0], pad, v.shape[2])], dim=1)
            ks.append(k)
            vs.append(v)
        return torch.stack(ks), torch.stack(vs)

    def key_bias(self) -> Tensor | None:
        return self._bias


class HistoryRing:
    """K/V of the last `slots` committed chunks of one session, for every layer."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        head_dim: int,
        tokens_per_chunk: int,
        slots: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if slots < 0:
            raise ValueError(f"history slots must be >= 0, got {slots}")
        self.slots = slots
        self.tokens_per_chunk = tokens_per_chunk
        # Slot s occupies tokens [s*P, (s+1)*P) so a valid prefix of slots is one contiguous view.
        shape = (n_layers, n_heads, slots * tokens_per_chunk, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        scratch = (n_layers, n_heads, tokens_per_chunk, head_dim)
        self.scratch_keys = torch.zeros(scratch, dtype=dtype, device=device)
        self.scratch_values = torch.zeros(scratch, dtype=dtype, device=device)
        self._next = 0  # slot the next commit writes
        self._committed = 0

    def reset(self) -> None:
        self._next = 0
        self._committed = 0

    @property
    def length(self) -> int:
        """Valid chunks in the ring (slots 0..length-1)."""
        return min(self._committed, self.slots)

    @property
    def pos(self) -> int:
        """Chunks committed since the last reset (bookkeeping only; never used as a position)."""
        return self._committed

    def chunks_back(self, slot: int) -> int:
        """How many chunks before the current one the chunk in `slot` was (1 = previous)."""
        return (self._next - 1 - slot) % self.slots + 1

    def write(self, layer: int, keys: Tensor, values: Tensor) -> None:
        """Scratch: the current chunk's un-roped K/V (H, P, D) of `layer`. Not visible until commit."""
        self.scratch_keys[layer].copy_(keys.detach())
        self.scratch_values[layer].copy_(values.detach())

    def commit(self) -> None:
        """Move the scratch of all layers into the next slot and advance the ring."""
        if self.slots == 0:
            self._committed += 1
            return
        p = self.tokens_per_chunk
        span = slice(self._next * p, (self._next + 1) * p)
        self.keys[:, :, span].copy_(self.scratch_keys)
        self.values[:, :, span].copy_(self.scratch_values)
        self._next = (self._next + 1) % self.slots
        self._committed += 1

    def nbytes(self) -> int:
        tensors = (self.keys, self.values, self.scratch_keys, self.scratch_values)
        return sum(t.numel() * t.element_size() for t in tensors)


class HistoryBatch:
    """The history rings of a batch of sessions, as batch rows for one backbone call."""

    def __init__(self, rings: list[HistoryRing]) -> None:
        if not rings:
            raise ValueError("HistoryBatch needs at least one HistoryRing")
        self.rings = rings
        self.chunks = max(r.length for r in rings)
        p = rings[0].tokens_per_chunk
        self.tokens = self.chunks * p
        self._bias = _key_bias([r.length * p for r in rings], self.tokens, rings[0].keys)
        # layer -> (the references it was built with, its context K/V); emptied by `commit`
        self._prepared: dict[int, tuple[object, tuple[Tensor, Tensor]]] = {}

    def chunks_back(self) -> Tensor:
        """(B, chunks) int64: for each row and valid slot, chunks before the current one (padding
        slots of short rows get 1; they are hidden by the key bias)."""
        rows = [
            [r.chunks_back(s) if s < r.length else 1 for s in range(self.chunks)]
            for r in self.rings
        ]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(self.rings), self.chunks)

    def keys_values(self, layer: int) -> tuple[Tensor, Tensor]:
        """(B, H, K, D) un-roped keys and values of the valid slots of `layer`."""
        if len(self.rings) == 1:
            ring = self.rings[0]
            return ring.keys[layer, :, : self.tokens][None], ring.values[layer, :, : self.tokens][
                None
            ]
        ks = torch.stack([r.keys[layer, :, : self.tokens] for r in self.rings])
        vs = torch.stack([r.values[layer, :, : self.tokens] for r in self.rings])
        return ks, vs

    def key_bias(self) -> Tensor | None:
        return self._bias

    def prepared(
        self, layer: int, references: object, prepare: Callable[[], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """`prepare()` of `layer` next to `references` (compared by identity), computed once per
        batch object until `commit`: every backbone pass of one step (denoising and
        noisy-history) attends over the same roped [references | history] K/V, so they are
        stacked and roped once a step, not once a pass (`kernels.streaming_attention`)."""
        entry = self._prepared.get(layer)
        if entry is None or entry[0] is not references:
            entry = (references, prepare())
            self._prepared[layer] = entry
        return entry[1]

    def write(self, layer: int, keys: Tensor, values: Tensor) -> None:
        """Scatter the batch's current-chunk K/V (B, H, P, D) into each ring's scratch."""
        for row, ring in enumerate(self.rings):
            ring.write(layer, keys[row], values[row])

    def commit(self) -> None:
        self._prepared.clear()  # the rings move on: what was derived from them is stale
        for ring in self.rings:
            ring.commit()
