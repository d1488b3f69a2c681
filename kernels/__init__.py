"""Triton kernels, installed as `lpm_npc.kernels`. Each op has a torch reference and a dispatch switch.

- `streaming_attention`: one chunk's self-attention over [references | history ring | chunk],
  rope in-kernel, caches read in place (`StreamingKeys`); kernel in `streaming_attention_triton`.
- `ring_write`: one chunk's K/V of every row into each row's ring (optionally roped at chunk-local
  positions); kernel in `ring_write_triton`.
- `streaming_rope`: positions of every segment and the per-axis cos/sin rows the kernels read.
- `dispatch`: the backend switch ("auto" | "triton" | "reference", `force_backend`, $LPM_NPC_KERNELS).
- `aot`: compile the kernels for sm_90 without a GPU (CI check, PTX summary).

Importing this package, `dispatch`, or the ops' modules does not import triton; the `*_triton`
modules do, on first use of a kernel. Benchmarks live in `lpm_npc.bench.kernels`.
"""
