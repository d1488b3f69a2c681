"""Compile the kernels for an NVIDIA target without a GPU: a CI check that they lower, and a look
at what they lower to (tensor-core instructions, shared memory, register spills).

The interpreter runs the kernels' arithmetic on CPU but never lowers them, so errors that only
the compiler sees (pointer casts, layout conversions, shared-memory limits) would otherwise wait
for the first GPU machine. Arguments are specialised the way the JIT does at launch: pointers as
16-byte aligned, integer arguments divisible by 16 as such, with the values of a real preset.

Must run in a process where `TRITON_INTERPRET` is unset (the interpreter replaces `@triton.jit`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from lpm_npc.config import ModelConfig

from . import ring_write_triton, streaming_attention_triton

_TYPE = {
    "fp16": ("*fp16", tl.float16),
    "bf16": ("*bf16", tl.bfloat16),
    "fp32": ("*fp32", tl.float32),
}


@dataclass(frozen=True)
class CompiledKernel:
    """What one kernel compiled to."""

    kernel: str
    target: str  # e.g. "cuda:90"
    dtype: str
    shared_bytes: int  # static shared memory per program
    tensor_core_ops: int  # wgmma (sm_90) or mma.sync instructions in the PTX
    local_memory_ops: int  # .local accesses in the PTX: register spills (want 0)
    vector_loads: int  # ld.global.v2/v4
    scalar_half_loads: int  # ld.global.b16: unvectorised 2-byte loads (want 0)

    def as_dict(self) -> dict:
        return asdict(self)


def _compile(fn, pointers, ints, floats, constexprs, options, arch, name, dtype) -> CompiledKernel:
    signature: dict[str, str] = {}
    constants: dict[str, object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for index, arg in enumerate(fn.arg_names):
        if arg in constexprs:
            signature[arg], constants[arg] = "constexpr", constexprs[arg]
        elif arg in pointers:
            signature[arg] = pointers[arg]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif arg in floats:
            signature[arg] = "fp32"
        else:
            value = ints[arg]  # KeyError names an argument the example forgot
            signature[arg] = "i32"
            if value % 16 == 0 and value != 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn, signature, constants, attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    ptx = compiled.asm["ptx"]
    return CompiledKernel(
        kernel=name,
        target=f"cuda:{arch}",
        dtype=dtype,
        shared_bytes=int(compiled.metadata.shared),
        tensor_core_ops=len(re.findall(r"\b(?:wgmma|mma\.sync)\.", ptx)),
        local_memory_ops=len(re.findall(r"\b(?:ld|st)\.local\b", ptx)),
        vector_loads=len(re.findall(r"ld\.global(?:\.[a-z]+)*\.v[24]\.", ptx)),
        scalar_half_loads=len(re.findall(r"ld\.global(?:\.[a-z]+)*\.b16\b", ptx)),
    )


def compile_streaming_attention(
    preset: str = "lpm-17b",
    dtype: str = "fp16",
    *,
    history_roped: bool = False,
    reference_mask: bool = False,
    arch: int = 90,
) -> CompiledKernel:
    """The attention kernel as `streaming_attention_triton` would launch it for `preset`."""
    cfg = ModelConfig.from_name(preset)
    pointer, element = _TYPE[dtype]
    d, h, n = cfg.head_dim, cfg.n_heads, cfg.tokens_per_chunk
    grid = cfg.latent_size // cfg.patch_size[1]
    config = streaming_attention_triton.launch_config(d, on_gpu=True)
    options = {k: config.pop(k) for k in ("num_warps", "num_stages")}
    strides = {"b": n * h * d, "h": d, "n": h * d}  # split_heads views of (B, N, H*D)
    ints = {f"stride_{t}{axis}": v for t in "qkvo" for axis, v in strides.items()}
    ints |= dict(
        stride_cb=cfg.history_chunks, stride_mask=cfg.max_references * grid * grid, batch=1, n_heads=h, N=n, reference_time=cfg.reference_offset,
        time_min=-cfg.history_chunks, n_time=cfg.history_chunks + 2, GH=grid, GW=grid,
        P=grid * grid, PC=n, L=cfg.chunk_latent_frames, TIME_PAIRS=d // 2 - 2 * (d // 6),
        SPATIAL_PAIRS=d // 6, HALF_D=d // 2,
    )  # fmt: skip
    pointers = {"Q": pointer, "K": pointer, "V": pointer, "Out": pointer, "SOURCES": "*i64"}
    pointers |= {"LENGTHS": "*i32", "CHUNKS_BACK": "*i32", "COS": "*fp32", "SIN": "*fp32"}
    pointers |= {"REF_MASK": "*i8"}
    constexprs = dict(
        REF_DT=element, HIST_DT=element, HISTORY_ROPED=history_roped, HAS_REF_MASK=reference_mask,
        ALIGNED=True,
        PRECISION="ieee" if dtype == "fp32" else "tf32", **config,
    )  # fmt: skip
    return _compile(
        streaming_attention_triton._streaming_attention_fwd, pointers, ints, {"qk_scale"},
        constexprs, options, arch, f"streaming_attention[{preset}]", dtype,
    )  # fmt: skip


def compile_ring_write(
    preset: str = "lpm-17b", dtype: str = "fp16", arch: int = 90
) -> CompiledKernel:
    """The ring-write kernel (with rope) for `preset`."""
    cfg = ModelConfig.from_name(preset)
    pointer, element = _TYPE[dtype]
    d, h, n = cfg.head_dim, cfg.n_heads, cfg.tokens_per_chunk
    grid = cfg.latent_size // cfg.patch_size[1]
    strides = {"b": n * h * d, "h": d, "n": h * d}
    ints = {f"stride_{t}{axis}": v for t in "kv" for axis, v in strides.items()}
    ints |= dict(
        n_heads=h, tokens=n, time_min=-cfg.history_chunks, n_time=cfg.history_chunks + 2,
        GH=grid, GW=grid, P=grid * grid, TIME_PAIRS=d // 2 - 2 * (d // 6), SPATIAL_PAIRS=d // 6,
        HALF_D=d // 2,
    )  # fmt: skip
    pointers = {"K": pointer, "V": pointer, "DEST": "*i64", "SLOTS": "*i32"}
    pointers |= {"COS": "*fp32", "SIN": "*fp32"}
    half = max(16, triton.next_power_of_2(d // 2))
    constexprs = dict(KEY_DT=element, VALUE_DT=element, ROPE=True, HALF=half, BLOCK_T=64)
    return _compile(
        ring_write_triton._ring_write_fwd, pointers, ints, set(), constexprs,
        {"num_warps": 4}, arch, f"ring_write[{preset}]", dtype,
    )  # fmt: skip
