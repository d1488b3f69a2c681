"""Streaming self-attention of one chunk over [references | history ring | current chunk].

The op (per layer, per batch row b, per head):
    out = softmax(rope(q) . [rope(ref_k) | rope(ring_k) | rope(k)]^T / sqrt(D)) @ [ref_v | ring_v | v]
with each segment roped at its own positions (`streaming_rope.py`) and each row seeing only its own
valid prefix of references (`reference_counts[b]`; none when `reference_keep[b]` is 0; optionally a
token mask) and of ring slots (`history_slots[b]`). The current chunk is bidirectional and always
fully visible.

Layouts (D = head dim, P = tokens per latent frame, L*P = tokens per chunk and per ring slot):
- q, k, v: (B, H, N, D) the current chunk, un-roped (any strides with a unit last stride).
- references, per row b and layer l: (H, R_b*P, D) un-roped (`ReferenceCache.keys[l]`), or per
  layer one (B, H, R*P, D) tensor (the training rollout's `TrainReferences`), optionally with a
  (B, R*P) token mask (references that are not a valid prefix, e.g. a random subset).
- ring, per row b and layer l: (H, S*L*P, D) un-roped (`HistoryRing.keys[l]`); slot s holds the
  chunk `chunks_back[b, s]` chunks ago at tokens [s*L*P, (s+1)*L*P).

`StreamingKeys` names those per-row tensors for every layer of one step. The Triton kernel
(`streaming_attention_triton.py`) reads them where they live through a per-layer table of
(pointer, head stride, token stride) per row: nothing is stacked, padded, roped or concatenated.

`streaming_attention_reference` is the torch path that `DiT.forward_chunk` used before the kernel:
stack and pad the rows, rope every segment with the model's own tables, concatenate, build the
(B, 1, 1, K) key bias, one SDPA. `streaming_attention` is the dispatch (`dispatch.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lpm_npc.model.rope import apply_rope

from .dispatch import use_triton
from .streaming_rope import StreamingRope

# Per row: indexable by layer, giving that layer's (H, K, D) keys or values. A (n_layers, H, K, D)
# tensor (a history ring) and a tuple of (H, K, D) tensors (a ReferenceCache) both qualify.
LayerStack = Tensor | Sequence[Tensor]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
SEGMENTS = ("reference_keys", "reference_values", "history_keys", "history_values")


def _n_layers(stack: LayerStack) -> int:
    return stack.shape[0] if isinstance(stack, Tensor) else len(stack)


@dataclass(frozen=True)
class StreamingKeys:
    """The un-roped reference and ring K/V of one streaming step, per row, for every layer."""

    rope: StreamingRope  # positions and rope tables of this DiT
    batch: int  # B: rows of the step
    n_layers: int  # layers each LayerStack holds
    reference_keys: tuple[LayerStack, ...]  # per row; () when the step has no references
    reference_values: tuple[LayerStack, ...]
    reference_counts: tuple[int, ...]  # per row: valid reference tokens (before `reference_keep`)
    reference_keep: Tensor | None  # None or (B,) 0/1: 0 hides a row's references (dropout)
    reference_mask: Tensor | None  # None or (B, >= max count) bool: False hides a reference token
    history_keys: tuple[LayerStack, ...]  # per row; () when the step has no history
    history_values: tuple[LayerStack, ...]
    history_slots: tuple[int, ...]  # per row: valid ring slots (a prefix)
    chunks_back: Tensor  # (B, S) int: chunks before the current one of each valid slot
    history_roped: bool  # ring keys were written roped at chunk-local positions (`ring_write`)
    # Optional `ReferenceBatch.prepared`-style cache of the roped, stacked (B, H, Kr, D) references
    # of a layer, so the torch path ropes them once per step, not once per pass (the kernel ropes
    # in registers and never uses it). Must describe the same rows as `reference_keys`.
    prepared_references: Callable[[int, Callable], tuple[Tensor, Tensor]] | None
    # Optional `HistoryBatch.prepared`-style cache of a layer's whole context K/V, (B, H, K, D)
    # = [roped references | roped history | room for the current chunk], so the torch path stacks,
    # ropes and concatenates them once per step and each pass only writes its own chunk into the
    # room (the kernel never uses it). Must describe the same rows, references and ring slots.
    prepared_context: Callable[[int, Callable], tuple[Tensor, Tensor]] | None = None
    _device_tables: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        rope: StreamingRope,
        batch: int,
        *,
        reference_keys: Sequence[LayerStack] = (),
        reference_values: Sequence[LayerStack] = (),
        reference_counts: Sequence[int] | None = None,
        reference_keep: Tensor | None = None,
        reference_mask: Tensor | None = None,
        batched_reference_keys: Sequence[Tensor] = (),
        batched_reference_values: Sequence[Tensor] = (),
        history_keys: Sequence[LayerStack] = (),
        history_values: Sequence[LayerStack] = (),
        history_slots: Sequence[int] | None = None,
        chunks_back: Tensor | None = None,
        history_roped: bool = False,
        prepared_references: Callable[[int, Callable], tuple[Tensor, Tensor]] | None = None,
        prepared_context: Callable[[int, Callable], tuple[Tensor, Tensor]] | None = None,
    ) -> StreamingKeys:
        """Check and name the sources. `reference_counts` defaults to each row's full length,
        `history_slots` to every slot of each ring; `chunks_back` (B, >= max slots) is required
        when any row has history. `batched_reference_keys/values` (per layer (B, H, Kr, D)) are
        the alternative to per-row `reference_keys/values`: each row becomes views of them."""
        if batched_reference_keys:
            if reference_keys:
                raise ValueError("pass reference_keys or batched_reference_keys, not both")
            reference_keys = [tuple(k[b] for k in batched_reference_keys) for b in range(batch)]
            reference_values = [tuple(v[b] for v in batched_reference_values) for b in range(batch)]
        layers = {_n_layers(s) for s in (*reference_keys, *reference_values)}
        layers |= {_n_layers(s) for s in (*history_keys, *history_values)}
        if len(layers) > 1:
            raise ValueError(f"every LayerStack must hold the same number of layers, got {layers}")
        for name, rows in zip(
            SEGMENTS, (reference_keys, reference_values, history_keys, history_values)
        ):
            if rows and len(rows) != batch:
                raise ValueError(f"{name}: {len(rows)} rows for a batch of {batch}")
        if len(reference_keys) != len(reference_values) or len(history_keys) != len(history_values):
            raise ValueError("keys and values must come in pairs, row for row")
        per_slot = rope.tokens_per_slot
        if reference_counts is not None and len(reference_counts) != len(reference_keys):
            raise ValueError(
                f"{len(reference_counts)} reference_counts for {len(reference_keys)} rows"
            )
        if history_slots is not None and len(history_slots) != len(history_keys):
            raise ValueError(f"{len(history_slots)} history_slots for {len(history_keys)} rows")
        if reference_counts is None:
            reference_counts = [s[0].shape[1] for s in reference_keys]
        if history_slots is None:
            history_slots = [s[0].shape[1] // per_slot for s in history_keys]
        for b, count in enumerate(reference_counts):
            if not 0 <= count <= reference_keys[b][0].shape[1]:
                raise ValueError(
                    f"reference_counts[{b}] = {count} outside [0, "
                    f"{reference_keys[b][0].shape[1]}] (the row's reference tokens)"
                )
        for b, slots in enumerate(history_slots):
            capacity = history_keys[b][0].shape[1] // per_slot
            if not 0 <= slots <= capacity:
                raise ValueError(f"history_slots[{b}] = {slots} outside [0, {capacity}]")
        if reference_mask is not None:
            needed = max(reference_counts, default=0)
            if reference_mask.dim() != 2 or reference_mask.shape[0] != batch:
                raise ValueError(
                    f"reference_mask must be (B={batch}, Kr), got {reference_mask.shape}"
                )
            if reference_mask.shape[1] < needed:
                raise ValueError(
                    f"reference_mask covers {reference_mask.shape[1]} of {needed} tokens"
                )
            reference_mask = reference_mask.bool()
        max_slots = max(history_slots, default=0)
        if chunks_back is None:
            if max_slots:
                raise ValueError("chunks_back (B, S) is required when a row has history")
            chunks_back = torch.ones(batch, 0, dtype=torch.int64)
        if chunks_back.dim() != 2 or chunks_back.shape[0] != batch:
            raise ValueError(f"chunks_back must be (B={batch}, S), got {tuple(chunks_back.shape)}")
        if chunks_back.shape[1] < max_slots:
            raise ValueError(f"chunks_back has {chunks_back.shape[1]} slots, rows use {max_slots}")
        deepest = -rope.time_min // rope.chunk_frames
        if not chunks_back.is_cuda and max_slots:  # cheap to check where it costs no sync
            used = chunks_back[:, :max_slots]
            if bool((used < 1).any()) or bool((used > deepest).any()):
                raise ValueError(f"chunks_back values must lie in [1, {deepest}] (the rope tables)")
        return cls(
            rope=rope,
            batch=batch,
            n_layers=layers.pop() if layers else 0,
            reference_keys=tuple(reference_keys),
            reference_values=tuple(reference_values),
            reference_counts=tuple(int(c) for c in reference_counts),
            reference_keep=reference_keep,
            reference_mask=reference_mask,
            history_keys=tuple(history_keys),
            history_values=tuple(history_values),
            history_slots=tuple(int(s) for s in history_slots),
            chunks_back=chunks_back,
            history_roped=history_roped,
            prepared_references=prepared_references,
            prepared_context=prepared_context,
        )

    @property
    def max_reference_tokens(self) -> int:
        return max(self.reference_counts, default=0)

    @property
    def max_history_slots(self) -> int:
        return max(self.history_slots, default=0)

    def reference_valid(self, device: torch.device, *, apply_keep: bool = True) -> Tensor:
        """(B,) int32 visible reference tokens per row (`reference_keep` applied unless not)."""
        counts = torch.tensor(self.reference_counts or [0] * self.batch, dtype=torch.int32)
        counts = counts.to(device)
        if apply_keep and self.reference_keep is not None:
            counts = counts * (self.reference_keep.to(device) != 0).to(torch.int32)
        return counts

    def history_valid(self, device: torch.device) -> Tensor:
        """(B,) int32 visible history tokens per row."""
        slots = torch.tensor(self.history_slots or [0] * self.batch, dtype=torch.int32)
        return (slots * self.rope.tokens_per_slot).to(device)


def _stack_rows(rows: tuple[LayerStack, ...], layer: int, tokens: int, like: Tensor) -> Tensor:
    """(B, H, tokens, D) of `layer`: each row's first `tokens` keys, zero-padded, in like's dtype."""
    out = []
    for stack in rows:
        x = stack[layer][:, :tokens].to(device=like.device, dtype=like.dtype)
        if x.shape[1] < tokens:
            x = torch.cat([x, x.new_zeros(x.shape[0], tokens - x.shape[1], x.shape[2])], dim=1)
        out.append(x)
    return out[0][None] if len(out) == 1 else torch.stack(out)  # one row: a view, no copy


def _key_bias(keys: StreamingKeys, n_current: int, like: Tensor) -> Tensor | None:
    """(B, 1, 1, K) additive bias over [references | history | chunk], None when all are visible."""
    device = like.device
    valid = []
    n_ref = keys.max_reference_tokens
    if n_ref:
        ref_valid = torch.arange(n_ref, device=device)[None] < keys.reference_valid(device)[:, None]
        if keys.reference_mask is not None:
            ref_valid = ref_valid & keys.reference_mask[:, :n_ref].to(device)
        valid.append(ref_valid)
    n_hist = keys.max_history_slots * keys.rope.tokens_per_slot
    if n_hist:
        valid.append(
            torch.arange(n_hist, device=device)[None] < keys.history_valid(device)[:, None]
        )
    valid.append(torch.ones(keys.batch, n_current, dtype=torch.bool, device=device))
    key_valid = torch.cat(valid, dim=1)
    if bool(key_valid.all()):
        return None
    bias = torch.zeros(key_valid.shape, dtype=like.dtype, device=device)
    return bias.masked_fill(~key_valid, float("-inf"))[:, None, None, :]


def _per_step(keys: StreamingKeys, name: str, like: Tensor, make: Callable[[], object]):
    """What every layer of a step shares (history rope table, key bias), computed once."""
    key = (name, like.device, like.dtype)
    if key not in keys._device_tables:
        keys._device_tables[key] = make()
    return keys._device_tables[key]


def _context_segments(
    keys: StreamingKeys, layer: int, k: Tensor, v: Tensor
) -> tuple[list[Tensor], list[Tensor]]:
    """The roped references and ring of `layer` as (B, H, *, D) key and value segments, in order."""
    rope = keys.rope
    device = k.device
    ks, vs = [], []
    n_ref = keys.max_reference_tokens
    if n_ref:
        table = rope.reference_table(n_ref, device)

        def prepare(rk: Tensor, rv: Tensor) -> tuple[Tensor, Tensor]:
            return apply_rope(rk.to(k.dtype), table), rv.to(v.dtype)

        if keys.prepared_references is not None:  # the caller caches roped references per step
            rk, rv = keys.prepared_references(layer, prepare)
            rk, rv = rk[:, :, :n_ref], rv[:, :, :n_ref]
        else:
            stacked = (keys.reference_keys, keys.reference_values)
            rk, rv = prepare(*(_stack_rows(rows, layer, n_ref, k) for rows in stacked))
        ks.append(rk)
        vs.append(rv)
    slots = keys.max_history_slots
    if slots:
        n_hist = slots * rope.tokens_per_slot
        back = keys.chunks_back[:, :slots].to(device)
        table = _per_step(
            keys,
            "history_table",
            k,
            lambda: rope.table(rope.history_positions(back, roped_local=keys.history_roped)),
        )
        ks.append(apply_rope(_stack_rows(keys.history_keys, layer, n_hist, k), table))
        vs.append(_stack_rows(keys.history_values, layer, n_hist, v))
    return ks, vs


def _context_with_room(
    keys: StreamingKeys, layer: int, k: Tensor, v: Tensor
) -> tuple[Tensor, Tensor]:
    """(B, H, K, D) keys and values [roped references | roped history | room for the current
    chunk] of `layer`; the room (the last N tokens) is left for each pass to fill."""
    ks, vs = _context_segments(keys, layer, k, v)
    n = k.shape[2]
    room_k = k.new_empty(k.shape[0], k.shape[1], n, k.shape[3])
    room_v = v.new_empty(v.shape[0], v.shape[1], n, v.shape[3])
    return torch.cat([*ks, room_k], dim=2), torch.cat([*vs, room_v], dim=2)


def streaming_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, keys: StreamingKeys, layer: int
) -> Tensor:
    """Torch reference: (B, H, N, D) un-roped current chunk -> (B, H, N, D), as the backbone did
    before the kernel (stack, rope with the model's tables, concatenate, key bias, SDPA).

    With `keys.prepared_context` (and no graph to record) the concatenation of references and
    ring is built once per step; a pass copies its roped chunk into the room at the end of it, so
    SDPA sees the very same tensor values as with a fresh concatenation.
    """
    n = q.shape[2]
    current = keys.rope.current_table(n, q.device)
    bias = _per_step(keys, "key_bias", q, lambda: _key_bias(keys, n, q))
    in_place = keys.prepared_context is not None and not (
        torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    )
    if in_place and (keys.max_reference_tokens or keys.max_history_slots):
        # Written in place, so only where no graph holds the previous pass's context.
        keys_all, values_all = keys.prepared_context(
            layer, lambda: _context_with_room(keys, layer, k, v)
        )
        keys_all[:, :, -n:].copy_(apply_rope(k, current))
        values_all[:, :, -n:].copy_(v)
    else:
        ks, vs = _context_segments(keys, layer, k, v)
        ks.append(apply_rope(k, current))
        vs.append(v)
        keys_all = ks[0] if len(ks) == 1 else torch.cat(ks, dim=2)
        values_all = vs[0] if len(vs) == 1 else torch.cat(vs, dim=2)
    return F.scaled_dot_product_attention(apply_rope(q, current), keys_all, values_all, bias)


def streaming_attention(q: Tensor, k: Tensor, v: Tensor, keys: StreamingKeys, layer: int) -> Tensor:
    """Dispatch: the fused Triton kernel on CUDA (or when forced), the torch reference elsewhere.

    q, k, v: (B, H, N, D) un-roped current chunk of `layer`; returns (B, H, N, D) in q's dtype.
    """
    if use_triton(q, k, v):
        # Imported here: importing triton costs ~1 s and CPU inference never needs it.
        from . import streaming_attention_triton

        return streaming_attention_triton.streaming_attention_triton(q, k, v, keys, layer)
    return streaming_attention_reference(q, k, v, keys, layer)
