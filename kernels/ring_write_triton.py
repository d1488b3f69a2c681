"""Triton kernel of `ring_write`: rope (optional) + scatter of one chunk's K/V into per-row rings.

Grid: (ceil(L*P / BLOCK_T), B * H). A program moves BLOCK_T tokens of one (row, head): it reads
the two rotate-half halves of the keys, ropes them in fp32 at the tokens' chunk-local (f, h, w)
from the `StreamingRope` rows when ROPE, and stores keys and values at the row's slot in its own
ring tensor, found through a (B, 2, 3) int64 table of (pointer, head stride, token stride).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from .ring_write import check_ring_write
from .streaming_attention import SUPPORTED_DTYPES
from .streaming_attention_triton import _TL_DTYPES, _rope_rows, _upload
from .streaming_rope import StreamingRope


@triton.jit
def _ring_write_fwd(
    K, V, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    DEST, SLOTS, COS, SIN,
    n_heads, tokens, time_min, n_time, GH, GW, P, TIME_PAIRS, SPATIAL_PAIRS, HALF_D,
    KEY_DT: tl.constexpr,
    VALUE_DT: tl.constexpr,
    ROPE: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_T: tl.constexpr,
):  # fmt: skip
    """K/V: (B, H, tokens, D) sources; DEST: (B, 2, 3) int64 [keys, values] x (pointer, head
    stride, token stride); SLOTS: (B,) int32 slot per row (tokens [slot*tokens, +tokens))."""
    pid_t = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, HALF)
    valid_t = offs_t < tokens
    mask = valid_t[:, None] & (offs_d < HALF_D)[None, :]
    slot_start = tl.load(SLOTS + b).to(tl.int64) * tokens

    k_ptr = K + b * stride_kb + h * stride_kh + offs_t[:, None] * stride_kn + offs_d[None, :]
    k1 = tl.load(k_ptr, mask=mask, other=0.0).to(tl.float32)
    k2 = tl.load(k_ptr + HALF_D, mask=mask, other=0.0).to(tl.float32)
    if ROPE:
        cos, sin = _rope_rows(
            offs_t // P, offs_t % P, valid_t, COS, SIN, time_min, n_time, GH, GW, TIME_PAIRS,
            SPATIAL_PAIRS, HALF_D, HALF, True,
        )  # fmt: skip
        k1, k2 = k1 * cos - k2 * sin, k1 * sin + k2 * cos
    entry = DEST + b * 6
    dk = tl.load(entry).to(tl.pointer_type(KEY_DT)) + h * tl.load(entry + 1)
    dk = dk + (slot_start + offs_t)[:, None] * tl.load(entry + 2) + offs_d[None, :]
    tl.store(dk, k1.to(KEY_DT), mask=mask)
    tl.store(dk + HALF_D, k2.to(KEY_DT), mask=mask)

    v_ptr = V + b * stride_vb + h * stride_vh + offs_t[:, None] * stride_vn + offs_d[None, :]
    v1 = tl.load(v_ptr, mask=mask, other=0.0)
    v2 = tl.load(v_ptr + HALF_D, mask=mask, other=0.0)
    dv = tl.load(entry + 3).to(tl.pointer_type(VALUE_DT)) + h * tl.load(entry + 4)
    dv = dv + (slot_start + offs_t)[:, None] * tl.load(entry + 5) + offs_d[None, :]
    tl.store(dv, v1.to(VALUE_DT), mask=mask)
    tl.store(dv + HALF_D, v2.to(VALUE_DT), mask=mask)


def ring_write_triton(
    keys: Tensor,
    values: Tensor,
    ring_keys: Sequence[Tensor],
    ring_values: Sequence[Tensor],
    slots: Sequence[int],
    *,
    rope: StreamingRope | None = None,
    block_t: int | None = None,
) -> None:
    """Launch the ring-write kernel (see `ring_write.ring_write`)."""
    check_ring_write(keys, values, ring_keys, ring_values, slots)
    b, n_heads, tokens, d = keys.shape
    for name, x in (("keys", keys), ("values", values)):
        if x.dtype not in SUPPORTED_DTYPES or x.stride(-1) != 1:
            raise ValueError(f"{name}: dtype in {SUPPORTED_DTYPES} and a unit D stride needed")
    for name, rows in (("ring_keys", ring_keys), ("ring_values", ring_values)):
        if len({x.dtype for x in rows}) > 1 or rows[0].dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name}: every row must share one dtype of {SUPPORTED_DTYPES}")
        if any(x.stride(-1) != 1 for x in rows):
            raise ValueError(f"{name}: every row needs a unit stride on D")
    if d % 2:
        raise ValueError(f"head dim {d} must be even")
    if rope is not None and (rope.head_dim != d or rope.cos.device != keys.device):
        raise ValueError(
            f"rope: head dim {rope.head_dim} on {rope.cos.device}; keys {d} on {keys.device}"
        )
    dest = torch.tensor(
        [
            [
                [rk.data_ptr(), rk.stride(0), rk.stride(1)],
                [rv.data_ptr(), rv.stride(0), rv.stride(1)],
            ]
            for rk, rv in zip(ring_keys, ring_values)
        ],
        dtype=torch.int64,
    )
    dest = _upload(dest, keys.device)
    slot_table = _upload(torch.tensor(list(slots), dtype=torch.int32), keys.device)
    if rope is not None:
        rope.current_positions(tokens, keys.device)  # raises unless whole latent frames
    cos = rope.cos if rope is not None else keys.new_zeros(1, dtype=torch.float32)
    sin = rope.sin if rope is not None else cos
    half_pad = max(16, triton.next_power_of_2(d // 2))
    block_t = block_t or (64 if keys.is_cuda else 32)
    grid = (triton.cdiv(tokens, block_t), b * n_heads)
    _ring_write_fwd[grid](
        keys, values,
        keys.stride(0), keys.stride(1), keys.stride(2),
        values.stride(0), values.stride(1), values.stride(2),
        dest, slot_table, cos, sin,
        n_heads, tokens,
        rope.time_min if rope else 0,
        rope.n_time_rows if rope else 1,
        rope.grid[0] if rope else 1,
        rope.grid[1] if rope else 1,
        rope.tokens_per_frame if rope else 1,
        rope.time_pairs if rope else 0,
        rope.spatial_pairs if rope else 0,
        d // 2,
        KEY_DT=_TL_DTYPES[ring_keys[0].dtype],
        VALUE_DT=_TL_DTYPES[ring_values[0].dtype],
        ROPE=rope is not None,
        HALF=half_pad,
        BLOCK_T=block_t,
    )  # fmt: skip
