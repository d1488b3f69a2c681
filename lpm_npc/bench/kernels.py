"""`lpm-npc bench kernels`: the fused streaming-attention kernel against what it replaces.

For each preset's head shape (tiny, small, lpm-17b: heads, head dim, tokens per chunk, ring slots,
references) and two batch compositions — `steady` (one session, full wrapped ring, all references)
and `mixed` (sessions with different ring fill and reference counts, so SDPA needs a key bias) —
one layer's streaming attention is timed four ways, in one run on one device:
- `kernel`: `streaming_attention_triton`, reading the per-row caches in place, rope in-kernel;
- `sdpa_copies`: what the backbone did per layer: rope the ring's keys, the chunk's q and k,
  concatenate [references | history | chunk] and call SDPA with the (B, 1, 1, K) bias. The
  references are pre-roped and pre-stacked (the backbone's `ReferenceBatch.prepared` amortises
  them over a step's passes), and the rope tables are precomputed: the baseline's best case;
- `sdpa_only`: SDPA alone on the already materialised K/V (the copies left out: a ceiling);
- `flex`: FlexAttention (compiled) on the same materialised K/V with a per-row length block mask.
Reported: milliseconds, TFLOP/s (QK^T + PV over each row's valid keys, 4*H*D*N*K), the ratios
kernel / baseline (> 1 = the kernel is faster), and a matmul's TFLOP/s in the same dtype measured
now, so the kernel's fraction of it is a ratio too (DESIGN §6).

Without a CUDA device this says so and returns; benchmarks never run inside the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lpm_npc.config import ModelConfig

log = logging.getLogger(__name__)

PRESETS: tuple[str, ...] = ("tiny", "small", "lpm-17b")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
NO_GPU_MESSAGE = (
    "no CUDA device: the kernel benchmark needs a GPU. Run `lpm-npc bench kernels --json` on a "
    "machine with one (pip install -e '.[gpu]'); see docs/perf.md."
)


@dataclass(frozen=True)
class KernelCase:
    """One timed configuration and its results (times in ms, throughput in TFLOP/s)."""

    preset: str
    batch: str  # "steady" or "mixed"
    rows: int
    heads: int
    head_dim: int
    queries: int  # tokens of the current chunk per row
    keys_per_row: list[int]  # valid keys of each row: references + history + chunk
    ms: dict[str, float | None]
    tflops: dict[str, float | None]
    speedup: dict[str, float | None]  # baseline ms / kernel ms
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KernelReport:
    gpu: bool
    device: str
    dtype: str
    matmul_tflops: float | None  # a large matmul in `dtype`, measured in the same run
    cases: list[KernelCase]
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iters


def _rows(cfg: ModelConfig, batch: str) -> list[tuple[int, int]]:
    """(reference frames, valid ring slots) per row."""
    refs, slots = cfg.max_references, cfg.history_chunks
    if batch == "steady":
        return [(refs, slots)]
    return [(refs, slots), (max(refs // 2, 1), slots // 2), (1, 1), (refs, 0)]


def _case(
    preset: str,
    batch: str,
    dtype: torch.dtype,
    flex: bool,
    warmup: int,
    iters: int,
    device: torch.device,
) -> KernelCase:
    from lpm_npc.kernels.streaming_attention import StreamingKeys
    from lpm_npc.kernels.streaming_attention_triton import streaming_attention_triton
    from lpm_npc.kernels.streaming_rope import StreamingRope
    from lpm_npc.model.rope import Rope3D, apply_rope

    cfg = ModelConfig.from_name(preset)
    grid = (cfg.latent_size // cfg.patch_size[1], cfg.latent_size // cfg.patch_size[2])
    rope = StreamingRope.build(
        Rope3D(cfg.head_dim).to(device), grid, cfg.chunk_latent_frames, cfg.reference_offset,
        cfg.history_chunks, device,
    )  # fmt: skip
    h, d, n, p = cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, rope.tokens_per_frame
    rows = _rows(cfg, batch)
    b, slots = len(rows), cfg.history_chunks

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, device=device, dtype=dtype)

    ref_k = [(randn(h, r * p, d),) for r, _ in rows]  # one layer per row, as a ReferenceCache
    ref_v = [(randn(h, r * p, d),) for r, _ in rows]
    ring_k = [randn(1, h, slots * n, d) for _ in rows]  # a HistoryRing's (n_layers, H, S*P, D)
    ring_v = [randn(1, h, slots * n, d) for _ in rows]
    wrapped = [(0 - s) % slots + 1 for s in range(slots)]  # write pointer at 1: slot order != age
    back = torch.tensor([wrapped] * b, dtype=torch.int64)
    keys = StreamingKeys.build(
        rope, b, reference_keys=ref_k, reference_values=ref_v, history_keys=ring_k,
        history_values=ring_v, history_slots=[s for _, s in rows], chunks_back=back,
    )  # fmt: skip
    q, k, v = (randn(b, n, h, d).transpose(1, 2) for _ in range(3))  # split_heads views

    # The baseline's inputs as the backbone holds them: references stacked and roped once,
    # rings stacked (HistoryBatch.keys_values), rope tables and key bias precomputed.
    n_ref = max(r for r, _ in rows) * p
    ref_table = rope.table(rope.reference_positions(n_ref, device))
    pad = [(0, 0, 0, n_ref - x[0].shape[1]) for x in ref_k]
    rk = torch.stack([F.pad(x[0], pd) for x, pd in zip(ref_k, pad)])
    rk_roped = apply_rope(rk, ref_table)
    rv = torch.stack([F.pad(x[0], pd) for x, pd in zip(ref_v, pad)])
    hk, hv = torch.cat(ring_k), torch.cat(ring_v)
    hist_table = rope.table(rope.history_positions(back.to(device)))
    cur_table = rope.table(rope.current_positions(n, device))
    ref_len = torch.tensor([r * p for r, _ in rows], device=device)
    hist_len = torch.tensor([s * n for _, s in rows], device=device)
    kv = torch.arange(n_ref + slots * n + n, device=device)
    valid = (kv[None] < ref_len[:, None]) | (kv[None] >= n_ref + slots * n)
    valid |= (kv[None] >= n_ref) & (kv[None] < n_ref + hist_len[:, None])
    bias = None
    if not bool(valid.all()):
        bias = torch.zeros(valid.shape, device=device, dtype=dtype)
        bias = bias.masked_fill(~valid, float("-inf"))[:, None, None, :]

    def copies() -> tuple[Tensor, Tensor, Tensor]:
        keys_all = torch.cat([rk_roped, apply_rope(hk, hist_table), apply_rope(k, cur_table)], 2)
        return apply_rope(q, cur_table), keys_all, torch.cat([rv, hv, v], dim=2)

    def sdpa_copies() -> Tensor:
        return F.scaled_dot_product_attention(*copies(), attn_mask=bias)

    q_roped, k_all, v_all = copies()
    ms: dict[str, float | None] = {
        "kernel": _time_ms(lambda: streaming_attention_triton(q, k, v, keys, 0), warmup, iters),
        "sdpa_copies": _time_ms(sdpa_copies, warmup, iters),
        "sdpa_only": _time_ms(
            lambda: F.scaled_dot_product_attention(q_roped, k_all, v_all, attn_mask=bias),
            warmup,
            iters,
        ),
        "flex": None,
    }
    notes: list[str] = []
    expected = sdpa_copies()
    error = (streaming_attention_triton(q, k, v, keys, 0).float() - expected.float()).abs()
    notes.append(f"kernel vs sdpa_copies: max abs error {error.max().item():.2e}")
    if flex:
        try:
            ms["flex"], note = _time_flex(q_roped, k_all, v_all, valid, warmup, iters)
            notes.append(note)
        except Exception as error:  # FlexAttention is optional: report why it failed, go on
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            notes.append(f"flex unavailable: {type(error).__name__}: {reason}")
    keys_per_row = [int(x) for x in valid.sum(dim=1).tolist()]
    flops = 4 * h * d * n * sum(keys_per_row)
    tflops = {name: (flops / (t * 1e-3) / 1e12 if t else None) for name, t in ms.items()}
    speedup = {
        name: (t / ms["kernel"] if t else None) for name, t in ms.items() if name != "kernel"
    }
    return KernelCase(preset, batch, b, h, d, n, keys_per_row, ms, tflops, speedup, notes)


def _time_flex(
    q: Tensor, k: Tensor, v: Tensor, valid: Tensor, warmup: int, iters: int
) -> tuple[float, str]:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, q_idx, kv_idx):
        return valid[b, kv_idx]

    mask = create_block_mask(
        mask_mod, q.shape[0], None, q.shape[2], k.shape[2], device=str(q.device)
    )
    compiled = torch.compile(flex_attention)
    return _time_ms(lambda: compiled(q, k, v, block_mask=mask), warmup, iters), (
        "flex: compiled flex_attention on materialised roped K/V, block mask of row lengths"
    )


def bench_kernels(
    presets: tuple[str, ...] = PRESETS,
    dtype: str = "bf16",
    *,
    flex: bool = True,
    warmup: int = 5,
    iters: int = 20,
) -> KernelReport:
    """Time every preset's head shape at both batch compositions; see the module docstring."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not torch.cuda.is_available():
        return KernelReport(False, "cpu", dtype, None, [], NO_GPU_MESSAGE)
    from lpm_npc.bench.generator import measure_matmul_gflops

    torch_dtype = DTYPES[dtype]
    matmul = measure_matmul_gflops(torch_dtype, "cuda") / 1e3
    cases = []
    for preset in presets:
        for batch in ("steady", "mixed"):
            log.info("bench kernels: %s %s", preset, batch)
            device = torch.device("cuda")
            cases.append(_case(preset, batch, torch_dtype, flex, warmup, iters, device))
            torch.cuda.empty_cache()
    return KernelReport(True, torch.cuda.get_device_name(), dtype, matmul, cases)


def format_report(report: KernelReport) -> str:
    """A human-readable table of a report."""
    if not report.gpu:
        return report.message
    lines = [f"{report.device}, {report.dtype}, matmul {report.matmul_tflops:.0f} TFLOP/s"]
    lines.append(
        f"{'preset':<9}{'batch':<8}{'kernel':>8}{'sdpa+copies':>13}{'sdpa only':>11}{'flex':>8}"
        f"{'x copies':>10}{'x sdpa':>8}  (TFLOP/s, speed-up of the kernel)"
    )

    def cell(value: float | None, width: int, fmt: str = ".1f") -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"

    for case in report.cases:
        t = case.tflops
        lines.append(
            f"{case.preset:<9}{case.batch:<8}{cell(t['kernel'], 8)}{cell(t['sdpa_copies'], 13)}"
            f"{cell(t['sdpa_only'], 11)}{cell(t['flex'], 8)}"
            f"{cell(case.speedup['sdpa_copies'], 10, '.2f')}{cell(case.speedup['sdpa_only'], 8, '.2f')}"
        )
    return "\n".join(lines)
