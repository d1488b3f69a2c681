"""Triton kernel of streaming attention: one pass over [references | history ring | current chunk].

Grid: (ceil(N / BLOCK_M), B * H). A program owns BLOCK_M queries of one (row, head). It loads them
once, ropes them at their chunk positions and keeps them in registers for the whole pass, then
streams the three key segments in order with one online softmax (running max m, running sum l, an
fp32 accumulator), so no (Nq, K) logits, mask or concatenated K/V ever exist in memory:
- references: the row's own `ReferenceCache` tensors, read where they live (a (pointer, head
  stride, token stride) table per layer and row), `reference_valid[b]` keys, roped at
  (reference_time, h, w);
- history: the row's ring storage, read in place, `history_valid[b]` keys, slot s roped at
  (f - chunks_back[b, s] * L, h, w) (or only (-chunks_back * L, 0, 0) for a ring written roped);
- current chunk: N keys roped at (f, h, w).
Keys are roped in registers as they arrive (fp32 math), from the per-axis cos/sin rows of
`StreamingRope` (a few KB, L1/L2 resident), so there is no transcendental per key and no extra pass.

Head dims: rotate-half pairs (x[j], x[j + D/2]) are loaded as two half tiles padded to a power of
two (>= 16 for tl.dot), so non-power-of-two head dims (24, 40, 48, 80, ...) work with masking;
q.k = q1.k1 + q2.k2 and the output is written as its two halves.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .streaming_attention import SUPPORTED_DTYPES, StreamingKeys

_TL_DTYPES = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32}
_LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 256


@triton.jit
def _rope_rows(
    t,
    hw,
    valid,
    COS,
    SIN,
    time_min,
    n_time,
    GH,
    GW,
    TIME_PAIRS,
    SPATIAL_PAIRS,
    HALF_D,
    HALF: tl.constexpr,
    SPATIAL: tl.constexpr,
):
    """cos, sin (BLOCK, HALF) fp32 of tokens at times t (BLOCK,) and in-frame index hw (BLOCK,).

    Column j reads the row of its own axis: time pairs the row of t, then h pairs, then w pairs.
    SPATIAL=False keeps only the time rotation (spatial columns: cos 1, sin 0). Padded columns and
    invalid tokens get cos 1, sin 0, so zero-padded inputs stay zero.
    """
    j = tl.arange(0, HALF)
    is_t = j < TIME_PAIRS
    is_h = (j >= TIME_PAIRS) & (j < TIME_PAIRS + SPATIAL_PAIRS)
    row_t = (t - time_min)[:, None]
    row_h = (n_time + hw // GW)[:, None]
    row_w = (n_time + GH + hw % GW)[:, None]
    row = tl.where(is_t[None, :], row_t, tl.where(is_h[None, :], row_h, row_w))
    mask = valid[:, None] & (j < HALF_D)[None, :]
    if not SPATIAL:
        mask = mask & is_t[None, :]
    offsets = row * HALF_D + j[None, :]
    cos = tl.load(COS + offsets, mask=mask, other=1.0)
    sin = tl.load(SIN + offsets, mask=mask, other=0.0)
    return cos, sin


@triton.jit
def _attend_segment(
    acc1,
    acc2,
    m_i,
    l_i,
    q1,
    q2,
    K,
    V,
    stride_kn,
    stride_vn,
    n_keys,
    CHUNKS_BACK,
    COS,
    SIN,
    qk_scale,
    reference_time,
    time_min,
    n_time,
    GH,
    GW,
    P,
    PC,
    L,
    TIME_PAIRS,
    SPATIAL_PAIRS,
    HALF_D,
    MASK,
    SEGMENT: tl.constexpr,  # 0 references, 1 history ring, 2 current chunk
    HAS_MASK: tl.constexpr,
    HISTORY_ROPED: tl.constexpr,
    DT: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Fold `n_keys` keys/values of one segment (K, V: (n_keys, D) with the given token strides)
    into the running softmax state (acc1/acc2 (BLOCK_M, HALF) fp32, m_i/l_i (BLOCK_M,) fp32).
    HAS_MASK: MASK (n_keys,) int8 hides keys whose entry is 0, so a tile may hold no valid key."""
    offs_d = tl.arange(0, HALF)
    dmask = offs_d < HALF_D
    for start in range(0, n_keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        valid_n = offs_n < n_keys
        if HAS_MASK:
            valid_n = valid_n & (tl.load(MASK + offs_n, mask=valid_n, other=0) != 0)
        hw = offs_n % P
        if SEGMENT == 0:
            t = tl.zeros([BLOCK_N], dtype=tl.int32) + reference_time
        elif SEGMENT == 1:
            back = tl.load(CHUNKS_BACK + offs_n // PC, mask=valid_n, other=1)
            if HISTORY_ROPED:
                t = -back * L
            else:
                t = (offs_n % PC) // P - back * L
        else:
            t = offs_n // P
        if SEGMENT == 1 and HISTORY_ROPED:
            cos, sin = _rope_rows(
                t, hw, valid_n, COS, SIN, time_min, n_time, GH, GW, TIME_PAIRS, SPATIAL_PAIRS,
                HALF_D, HALF, False,
            )  # fmt: skip
        else:
            cos, sin = _rope_rows(
                t, hw, valid_n, COS, SIN, time_min, n_time, GH, GW, TIME_PAIRS, SPATIAL_PAIRS,
                HALF_D, HALF, True,
            )  # fmt: skip
        kv_mask = valid_n[:, None] & dmask[None, :]
        k_ptr = K + offs_n[:, None] * stride_kn + offs_d[None, :]
        k1 = tl.load(k_ptr, mask=kv_mask, other=0.0).to(tl.float32)
        k2 = tl.load(k_ptr + HALF_D, mask=kv_mask, other=0.0).to(tl.float32)
        kr1 = (k1 * cos - k2 * sin).to(DT)
        kr2 = (k1 * sin + k2 * cos).to(DT)
        s = tl.dot(q1, tl.trans(kr1), input_precision=PRECISION)
        s = tl.dot(q2, tl.trans(kr2), s, input_precision=PRECISION)  # (BLOCK_M, BLOCK_N) fp32
        s = tl.where(valid_n[None, :], s * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # A masked tile can leave m at -inf; shift by 0 then, so exp2 gives 0 rather than NaN.
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_shift)
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_ptr = V + offs_n[:, None] * stride_vn + offs_d[None, :]
        v1 = tl.load(v_ptr, mask=kv_mask, other=0.0).to(DT)
        v2 = tl.load(v_ptr + HALF_D, mask=kv_mask, other=0.0).to(DT)
        p = p.to(DT)
        acc1 = tl.dot(p, v1, acc1 * alpha[:, None], input_precision=PRECISION)
        acc2 = tl.dot(p, v2, acc2 * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc1, acc2, m_i, l_i


@triton.jit
def _source(SOURCES, segment, b, batch, h, ELEM: tl.constexpr, ALIGNED: tl.constexpr):
    """(base pointer of head h, token stride) of one row's tensor from the (4, B, 3) int64 table."""
    entry = SOURCES + (segment * batch + b) * 3
    base = tl.load(entry).to(tl.pointer_type(ELEM))
    head_stride = tl.load(entry + 1)
    token_stride = tl.load(entry + 2)
    if ALIGNED:  # host checked: 16-byte pointers, strides multiples of 8 elements
        base = tl.multiple_of(base, 16)
        head_stride = tl.multiple_of(head_stride, 8)
        token_stride = tl.multiple_of(token_stride, 8)
    return base + h * head_stride, token_stride


@triton.jit
def _streaming_attention_fwd(
    Q, K, V, Out,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_on,
    SOURCES, LENGTHS, CHUNKS_BACK, stride_cb, REF_MASK, stride_mask,
    COS, SIN,
    batch, n_heads, N, qk_scale,
    reference_time, time_min, n_time, GH, GW, P, PC, L,
    TIME_PAIRS, SPATIAL_PAIRS, HALF_D,
    REF_DT: tl.constexpr,
    HIST_DT: tl.constexpr,
    HISTORY_ROPED: tl.constexpr,
    HAS_REF_MASK: tl.constexpr,
    ALIGNED: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    """Q/K/V/Out: (B, H, N, D) current chunk (unit last stride); SOURCES: (4, B, 3) int64 for this
    layer [ref K, ref V, ring K, ring V] x row x (pointer, head stride, token stride); LENGTHS:
    (B, 2) int32 visible [reference, history] keys; CHUNKS_BACK: (B, S) int32; REF_MASK: (B, Kr)
    int8 when HAS_REF_MASK; COS/SIN: rope rows."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // n_heads
    h = bh % n_heads
    DT = Q.dtype.element_ty

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HALF)
    valid_m = offs_m < N
    q_mask = valid_m[:, None] & (offs_d < HALF_D)[None, :]
    q_ptr = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qn + offs_d[None, :]
    q1 = tl.load(q_ptr, mask=q_mask, other=0.0).to(tl.float32)
    q2 = tl.load(q_ptr + HALF_D, mask=q_mask, other=0.0).to(tl.float32)
    cos, sin = _rope_rows(
        offs_m // P, offs_m % P, valid_m, COS, SIN, time_min, n_time, GH, GW, TIME_PAIRS,
        SPATIAL_PAIRS, HALF_D, HALF, True,
    )  # fmt: skip
    # The roped queries stay in registers for all three segments.
    qr1 = (q1 * cos - q2 * sin).to(DT)
    qr2 = (q1 * sin + q2 * cos).to(DT)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_M, HALF], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_M, HALF], dtype=tl.float32)

    n_ref = tl.load(LENGTHS + b * 2)
    n_hist = tl.load(LENGTHS + b * 2 + 1)
    rk, rk_stride = _source(SOURCES, 0, b, batch, h, REF_DT, ALIGNED)
    rv, rv_stride = _source(SOURCES, 1, b, batch, h, REF_DT, ALIGNED)
    acc1, acc2, m_i, l_i = _attend_segment(
        acc1, acc2, m_i, l_i, qr1, qr2, rk, rv, rk_stride, rv_stride, n_ref, CHUNKS_BACK, COS,
        SIN, qk_scale, reference_time, time_min, n_time, GH, GW, P, PC, L, TIME_PAIRS,
        SPATIAL_PAIRS, HALF_D, REF_MASK + b * stride_mask, 0, HAS_REF_MASK, HISTORY_ROPED, DT,
        HALF, BLOCK_N, PRECISION,
    )  # fmt: skip
    hk, hk_stride = _source(SOURCES, 2, b, batch, h, HIST_DT, ALIGNED)
    hv, hv_stride = _source(SOURCES, 3, b, batch, h, HIST_DT, ALIGNED)
    acc1, acc2, m_i, l_i = _attend_segment(
        acc1, acc2, m_i, l_i, qr1, qr2, hk, hv, hk_stride, hv_stride, n_hist,
        CHUNKS_BACK + b * stride_cb, COS, SIN, qk_scale, reference_time, time_min, n_time, GH,
        GW, P, PC, L, TIME_PAIRS, SPATIAL_PAIRS, HALF_D, REF_MASK, 1, False, HISTORY_ROPED, DT,
        HALF, BLOCK_N, PRECISION,
    )  # fmt: skip
    acc1, acc2, m_i, l_i = _attend_segment(
        acc1, acc2, m_i, l_i, qr1, qr2, K + b * stride_kb + h * stride_kh,
        V + b * stride_vb + h * stride_vh, stride_kn, stride_vn, N, CHUNKS_BACK, COS, SIN,
        qk_scale, reference_time, time_min, n_time, GH, GW, P, PC, L, TIME_PAIRS,
        SPATIAL_PAIRS, HALF_D, REF_MASK, 2, False, HISTORY_ROPED, DT, HALF, BLOCK_N, PRECISION,
    )  # fmt: skip

    out1 = acc1 / l_i[:, None]
    out2 = acc2 / l_i[:, None]
    o_ptr = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :]
    tl.store(o_ptr, out1.to(Out.dtype.element_ty), mask=q_mask)
    tl.store(o_ptr + HALF_D, out2.to(Out.dtype.element_ty), mask=q_mask)


def _entry(stack, layer: int) -> list[int]:
    """[pointer, head stride, token stride] of one layer, without making views of a
    (n_layers, H, K, D) ring tensor."""
    if isinstance(stack, Tensor):
        ptr = stack.data_ptr() + layer * stack.stride(0) * stack.element_size()
        return [ptr, stack.stride(1), stack.stride(2)]
    x = stack[layer]
    return [x.data_ptr(), x.stride(0), x.stride(1)]


def _check_rows(name: str, rows: tuple, n_layers: int, q: Tensor) -> torch.dtype | None:
    """Every row of one segment: on q's device, one supported dtype, (H, K, D), unit last stride."""
    dtypes = set()
    for b, stack in enumerate(rows):
        tensors = (stack,) if isinstance(stack, Tensor) else tuple(stack)
        for x in tensors:
            shape = tuple(x.shape[-3:])
            if x.device != q.device:
                raise ValueError(f"{name}[{b}] is on {x.device}, q on {q.device}")
            if x.dim() != (4 if isinstance(stack, Tensor) else 3):
                raise ValueError(f"{name}[{b}]: expected (H, K, D) per layer, got {tuple(x.shape)}")
            if shape[0] != q.shape[1] or shape[2] != q.shape[3]:
                raise ValueError(
                    f"{name}[{b}] has (H, K, D) = {shape}; q has H={q.shape[1]}, D={q.shape[3]}"
                )
            if x.stride(-1) != 1:
                raise ValueError(f"{name}[{b}] needs a unit stride on D, got {x.stride()}")
            dtypes.add(x.dtype)
        if isinstance(stack, Tensor) and stack.shape[0] != n_layers:
            raise ValueError(f"{name}[{b}] holds {stack.shape[0]} layers, expected {n_layers}")
    if len(dtypes) > 1 or (dtypes and not dtypes <= set(SUPPORTED_DTYPES)):
        raise ValueError(f"{name}: rows must share one dtype of {SUPPORTED_DTYPES}, got {dtypes}")
    return dtypes.pop() if dtypes else None


def _upload(host: Tensor, device: torch.device) -> Tensor:
    """Host table -> device without a host-device sync: pinned memory, non-blocking copy (the
    caching host allocator keeps the pinned block until the copy is done)."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _device_tables(keys: StreamingKeys, q: Tensor) -> dict:
    """Per-device launch tables of a step, built once for all layers (one host-to-device copy)."""
    cached = keys._device_tables.get(q.device)
    if cached is not None:
        return cached
    segments = (
        keys.reference_keys,
        keys.reference_values,
        keys.history_keys,
        keys.history_values,
    )
    dtypes = [_check_rows(name, rows, keys.n_layers, q) for name, rows in zip(
        ("reference_keys", "reference_values", "history_keys", "history_values"), segments
    )]  # fmt: skip
    if dtypes[0] != dtypes[1] or dtypes[2] != dtypes[3]:
        raise ValueError(f"keys and values of a segment must share a dtype, got {dtypes}")
    # (layers, 4 segments, B, [pointer, head stride, token stride]); absent segments stay 0.
    empty = [[0, 0, 0]] * keys.batch
    table = [
        [[_entry(stack, layer) for stack in rows] if rows else empty for rows in segments]
        for layer in range(max(keys.n_layers, 1))
    ]
    entries = [e for per_layer in table for per_segment in per_layer for e in per_segment]
    aligned = all(ptr % 16 == 0 and hs % 8 == 0 and ts % 8 == 0 for ptr, hs, ts in entries)
    # (B, 2) visible [reference, history] keys; `reference_keep` is applied on the device.
    cpu = torch.device("cpu")
    lengths = torch.stack([keys.reference_valid(cpu, apply_keep=False), keys.history_valid(cpu)], 1)
    lengths = _upload(lengths.contiguous(), q.device)
    if keys.reference_keep is not None:
        lengths[:, 0] *= (keys.reference_keep.to(q.device) != 0).to(torch.int32)
    chunks_back = keys.chunks_back
    if chunks_back.shape[1] == 0:
        chunks_back = torch.ones(keys.batch, 1, dtype=torch.int32)
    mask = keys.reference_mask
    mask = torch.ones(1, 1) if mask is None else mask[:, : max(keys.max_reference_tokens, 1)]
    if not chunks_back.is_cuda:
        chunks_back = _upload(chunks_back.to(torch.int32).contiguous(), q.device)
    cached = {
        "reference_mask": mask.to(device=q.device, dtype=torch.int8).contiguous(),
        "sources": _upload(torch.tensor(table, dtype=torch.int64), q.device),
        "lengths": lengths,
        "chunks_back": chunks_back.to(device=q.device, dtype=torch.int32).contiguous(),
        "ref_dtype": _TL_DTYPES[dtypes[0] or q.dtype],
        "hist_dtype": _TL_DTYPES[dtypes[2] or q.dtype],
        "aligned": aligned,
    }
    keys._device_tables[q.device] = cached
    return cached


def _check_current(q: Tensor, k: Tensor, v: Tensor, keys: StreamingKeys, layer: int) -> None:
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"q dtype {q.dtype} not supported; use one of {SUPPORTED_DTYPES}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must all be (B, H, N, D); got {q.shape}, {k.shape}, {v.shape}")
    b, _, n, d = q.shape
    if b != keys.batch:
        raise ValueError(f"q has {b} rows, StreamingKeys {keys.batch}")
    if d % 2 or not 2 <= d <= MAX_HEAD_DIM or d != keys.rope.head_dim:
        raise ValueError(
            f"head dim {d} must be even, <= {MAX_HEAD_DIM} and match the rope ({keys.rope.head_dim})"
        )
    if any(x.stride(-1) != 1 for x in (q, k, v)):
        raise ValueError("q, k, v need a unit stride on D (split_heads views are fine)")
    frames = n // keys.rope.tokens_per_frame
    if n % keys.rope.tokens_per_frame or frames > keys.rope.n_time_rows + keys.rope.time_min:
        raise ValueError(
            f"the chunk's {n} tokens must be whole latent frames of {keys.rope.tokens_per_frame} "
            f"tokens, at most {keys.rope.n_time_rows + keys.rope.time_min} of them"
        )
    if keys.n_layers and not 0 <= layer < keys.n_layers:
        raise ValueError(f"layer {layer} outside [0, {keys.n_layers})")
    if keys.rope.cos.device != q.device:
        raise ValueError(f"StreamingRope tables are on {keys.rope.cos.device}, q on {q.device}")


def launch_config(head_dim: int, on_gpu: bool) -> dict[str, int]:
    """Tile sizes and launch options. GPU: 128 queries x 64 keys per step (lpm-17b, D=128: 8 warps,
    ~128 KB shared memory, 254 registers on sm_90, no spills); the interpreter: 32 x 32."""
    config = {
        "HALF": max(16, triton.next_power_of_2(head_dim // 2)),
        "BLOCK_M": 128 if on_gpu and head_dim <= 128 else 64 if on_gpu else 32,
        "BLOCK_N": 64 if on_gpu else 32,
    }
    if on_gpu:
        config |= {"num_warps": 8 if head_dim >= 128 else 4, "num_stages": 2}
    return config


def streaming_attention_triton(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    keys: StreamingKeys,
    layer: int,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
) -> Tensor:
    """Launch the fused kernel: q, k, v (B, H, N, D) un-roped -> (B, H, N, D) in q's dtype."""
    _check_current(q, k, v, keys, layer)
    tables = _device_tables(keys, q)
    b, n_heads, n, d = q.shape
    config = launch_config(d, q.is_cuda)
    config["BLOCK_M"] = block_m or config["BLOCK_M"]
    config["BLOCK_N"] = block_n or config["BLOCK_N"]
    out = torch.empty_like(q)
    rope = keys.rope
    sources = tables["sources"][min(layer, tables["sources"].shape[0] - 1)]
    grid = (triton.cdiv(n, config["BLOCK_M"]), b * n_heads)
    _streaming_attention_fwd[grid](
        q, k, v, out,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        sources, tables["lengths"], tables["chunks_back"], tables["chunks_back"].stride(0),
        tables["reference_mask"], tables["reference_mask"].stride(0),
        rope.cos, rope.sin,
        b, n_heads, n, d**-0.5 * _LOG2E,
        rope.reference_time, rope.time_min, rope.n_time_rows, rope.grid[0], rope.grid[1],
        rope.tokens_per_frame, rope.tokens_per_slot, rope.chunk_frames,
        rope.time_pairs, rope.spatial_pairs, d // 2,
        REF_DT=tables["ref_dtype"],
        HIST_DT=tables["hist_dtype"],
        HISTORY_ROPED=keys.history_roped,
        HAS_REF_MASK=keys.reference_mask is not None,
        ALIGNED=tables["aligned"] and q.is_cuda,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        **config,
    )  # fmt: skip
    return out
