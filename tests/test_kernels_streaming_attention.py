"""Streaming attention kernel: Triton (interpreter on CPU) vs the torch reference, and the reference
vs what `DiT.forward_chunk` computes with the model's own caches.

Cases cover odd (non-power-of-two) token counts and head dims, an empty history, a full ring, a
wrapped ring, rows of one batch with different ring fill and reference counts, references dropped
by `refs_keep`, and a ring written roped (`history_roped`). Errors are printed as a table
(`pytest -s`); bf16 is not run here because the interpreter computes bf16 `tl.dot` wrongly.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module is imported

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from lpm_npc.kernels import dispatch  # noqa: E402
from lpm_npc.kernels import streaming_attention as sa  # noqa: E402
from lpm_npc.kernels.streaming_rope import StreamingRope  # noqa: E402

from lpm_npc.model.rope import Rope3D  # noqa: E402

# Per dtype: (max abs error, mean abs error) allowed against the reference (outputs are O(1)).
TOLERANCE = {
    torch.float32: (2e-6, 2e-7),
    torch.float16: (2e-3, 2e-4),
    torch.bfloat16: (1.6e-2, 2e-3),  # GPU only: the interpreter's bf16 tl.dot is wrong
}


def kernel_module():
    """The Triton launcher module, or skip where it cannot run on this machine."""
    pytest.importorskip("triton")
    if not dispatch.interpreter_requested():  # these tests run CPU tensors: the interpreter
        pytest.skip("needs TRITON_INTERPRET=1 set before the kernels are imported")
    from lpm_npc.kernels import streaming_attention_triton

    return streaming_attention_triton


@dataclass(frozen=True)
class Case:
    """One batch: per-row reference counts (in frames) and ring fill; ring wraps if `wrapped`."""

    name: str
    head_dim: int
    grid: tuple[int, int]
    chunk_frames: int
    ring_slots: int
    references: tuple[int, ...]  # per row: reference frames held (0 = none)
    slots: tuple[int, ...]  # per row: valid ring slots
    wrapped: bool = False
    keep: tuple[int, ...] | None = None  # refs_keep per row
    heads: int = 2


CASES = [
    Case("mixed-odd", 24, (3, 4), 2, 3, references=(2, 0, 1), slots=(3, 2, 0), wrapped=True),
    Case("current-only", 40, (2, 3), 1, 2, references=(0, 0), slots=(0, 0)),
    Case("full-ring-dropped-refs", 32, (3, 3), 1, 2, (2, 1), (2, 2), keep=(0, 1), heads=1),
    Case("long", 32, (4, 4), 1, 4, references=(4,), slots=(4,), wrapped=True, heads=1),
]


def chunks_back_of(slots: int, filled: int, wrapped: bool) -> list[int]:
    """HistoryRing.chunks_back of every slot after `filled` commits, or `slots + 1` commits when
    `wrapped` (the write pointer past slot 0, so slot order is not time order)."""
    if not slots:
        return []
    committed = slots + 1 if wrapped else filled
    nxt = committed % slots
    return [(nxt - 1 - s) % slots + 1 for s in range(slots)]


def make_case(case: Case, dtype: torch.dtype, layers: int = 2, seed: int = 0, device: str = "cpu"):
    """Random un-roped q/k/v and per-row caches laid out as ReferenceCache / HistoryRing hold them."""
    gen = torch.Generator().manual_seed(seed)
    rope = StreamingRope.build(
        Rope3D(case.head_dim).to(device), case.grid, case.chunk_frames, 1, case.ring_slots, device
    )
    per_frame, per_slot = rope.tokens_per_frame, rope.tokens_per_slot
    h, d, b = case.heads, case.head_dim, len(case.slots)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    ref_k = [tuple(randn(h, r * per_frame, d) for _ in range(layers)) for r in case.references]
    ref_v = [tuple(randn(h, r * per_frame, d) for _ in range(layers)) for r in case.references]
    ring_k = [randn(layers, h, case.ring_slots * per_slot, d) for _ in range(b)]
    ring_v = [randn(layers, h, case.ring_slots * per_slot, d) for _ in range(b)]
    back = [
        chunks_back_of(case.ring_slots, s, case.wrapped and s == case.ring_slots)
        for s in case.slots
    ]
    keep = None if case.keep is None else torch.tensor(case.keep, dtype=dtype, device=device)
    keys = sa.StreamingKeys.build(
        rope,
        b,
        reference_keys=ref_k if any(case.references) else (),
        reference_values=ref_v if any(case.references) else (),
        reference_keep=keep,
        history_keys=ring_k if any(case.slots) else (),
        history_values=ring_v if any(case.slots) else (),
        history_slots=list(case.slots) if any(case.slots) else None,
        chunks_back=torch.tensor(back, dtype=torch.int64) if any(case.slots) else None,
    )
    n = per_slot
    q, k, v = (randn(b, n, h, d).transpose(1, 2) for _ in range(3))  # split_heads-like strides
    return q, k, v, keys


def report(label: str, out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    err = (out.float() - ref.float()).abs()
    mx, mean = err.max().item(), err.mean().item()
    print(f"\n{label:<40} max {mx:.3e}  mean {mean:.3e}")
    return mx, mean


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kernel_matches_reference(case: Case, dtype: torch.dtype) -> None:
    kernel = kernel_module()
    q, k, v, keys = make_case(case, dtype)
    layer = 1
    ref = sa.streaming_attention_reference(q.float(), k.float(), v.float(), _as_fp32(keys), layer)
    out = kernel.streaming_attention_triton(q, k, v, keys, layer, block_m=16, block_n=16)
    assert out.dtype == dtype and out.shape == q.shape
    mx, mean = report(f"kernel {case.name} {dtype}", out, ref)
    max_tol, mean_tol = TOLERANCE[dtype]
    assert mx <= max_tol and mean <= mean_tol, f"max {mx:.3e} mean {mean:.3e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_kernel_with_batched_references_and_a_token_mask(dtype: torch.dtype) -> None:
    """The training rollout's layout: per layer (B, H, Kr, D) references and a mask that is not a
    prefix; row 0 hides a whole first tile of references (the online softmax starts at -inf)."""
    kernel = kernel_module()
    gen = torch.Generator().manual_seed(3)
    d, h, b, grid = 24, 2, 2, (2, 4)
    rope = StreamingRope.build(Rope3D(d), grid, 1, 1, 2, "cpu")
    per_frame = rope.tokens_per_frame
    n_ref = 5 * per_frame  # 40 tokens: three tiles of 16
    layers = [torch.randn(b, h, n_ref, d, generator=gen).to(dtype) for _ in range(2)]
    values = [torch.randn(b, h, n_ref, d, generator=gen).to(dtype) for _ in range(2)]
    mask = torch.ones(b, n_ref, dtype=torch.bool)
    mask[0, :16] = False  # the first tile of row 0
    mask[1, per_frame : 3 * per_frame] = False  # references 1 and 2 of row 1
    ring = [torch.randn(2, h, 2 * per_frame, d, generator=gen).to(dtype) for _ in range(b)]
    keys = sa.StreamingKeys.build(
        rope,
        b,
        batched_reference_keys=layers,
        batched_reference_values=values,
        reference_mask=mask,
        history_keys=ring,
        history_values=[x.flip(2) for x in ring],
        history_slots=[2, 1],
        chunks_back=torch.tensor([[2, 1], [1, 2]]),
    )
    q, k, v = (torch.randn(b, h, per_frame, d, generator=gen).to(dtype) for _ in range(3))
    ref = sa.streaming_attention_reference(q.float(), k.float(), v.float(), _as_fp32(keys), 1)
    out = kernel.streaming_attention_triton(q, k, v, keys, 1, block_m=16, block_n=16)
    mx, mean = report(f"kernel batched refs + mask {dtype}", out, ref)
    max_tol, mean_tol = TOLERANCE[dtype]
    assert mx <= max_tol and mean <= mean_tol, f"max {mx:.3e} mean {mean:.3e}"


def _as_fp32(keys: sa.StreamingKeys) -> sa.StreamingKeys:
    """The same sources in float32: the reference at full precision for the fp16 comparison."""

    def up(rows):
        return tuple(
            r.float() if isinstance(r, torch.Tensor) else tuple(x.float() for x in r) for r in rows
        )

    return sa.StreamingKeys.build(
        keys.rope,
        keys.batch,
        reference_keys=up(keys.reference_keys),
        reference_values=up(keys.reference_values),
        reference_counts=keys.reference_counts if keys.reference_keys else None,
        reference_keep=keys.reference_keep,
        reference_mask=keys.reference_mask,
        history_keys=up(keys.history_keys),
        history_values=up(keys.history_values),
        history_slots=keys.history_slots if keys.history_keys else None,
        chunks_back=keys.chunks_back if keys.history_keys else None,
    )


def test_reference_in_reduced_precision_tracks_fp32() -> None:
    """The fp16 reference itself (what CPU inference runs) stays near the fp32 one."""
    q, k, v, keys = make_case(CASES[0], torch.float16)
    ref16 = sa.streaming_attention_reference(q, k, v, keys, 0)
    ref32 = sa.streaming_attention_reference(q.float(), k.float(), v.float(), _as_fp32(keys), 0)
    mx, _ = report("reference fp16 vs fp32", ref16, ref32)
    assert mx <= 4e-3


def test_forcing_the_backend_runs_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = kernel_module()
    from lpm_npc.model.attention import attend_streaming

    q, k, v, keys = make_case(CASES[1], torch.float32)
    expected = sa.streaming_attention_reference(q, k, v, keys, 0)
    calls: list[int] = []
    launcher = kernel.streaming_attention_triton

    def spy(*args, **kwargs):
        calls.append(1)
        return launcher(*args, **kwargs)

    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran although the kernel was forced")

    monkeypatch.setattr(kernel, "streaming_attention_triton", spy)
    monkeypatch.setattr(sa, "streaming_attention_reference", no_reference)
    with dispatch.force_backend("triton"):
        out = attend_streaming(q, k, v, keys, 0)
    assert calls == [1]
    assert (out - expected).abs().max().item() <= TOLERANCE[torch.float32][0]
    monkeypatch.undo()
    monkeypatch.setattr(kernel, "streaming_attention_triton", spy)
    with dispatch.force_backend("reference"):
        attend_streaming(q, k, v, keys, 0)
    assert calls == [1]  # the reference did not launch the kernel


def test_dispatch_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.zeros(1)
    assert dispatch.backend() in dispatch.BACKENDS
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    assert not dispatch.use_triton(cpu)
    with dispatch.force_backend("auto"):
        assert not dispatch.use_triton(cpu)  # CPU tensors: auto picks the reference
        with dispatch.force_backend("reference"):
            assert dispatch.backend() == "reference"
        assert dispatch.backend() == "auto"
    monkeypatch.setenv(dispatch.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="LPM_NPC_KERNELS"):
        dispatch.backend()
    monkeypatch.delenv(dispatch.ENV_VAR)
    with pytest.raises(RuntimeError, match="forward-only"):
        with dispatch.force_backend("triton"):
            dispatch.use_triton(torch.zeros(1, requires_grad=True))


def test_bad_inputs_name_the_field() -> None:
    q, k, v, keys = make_case(CASES[0], torch.float32)
    with pytest.raises(ValueError, match="history_slots"):
        sa.StreamingKeys.build(
            keys.rope,
            3,
            history_keys=keys.history_keys,
            history_values=keys.history_values,
            history_slots=[4, 0, 0],
            chunks_back=keys.chunks_back,
        )
    with pytest.raises(ValueError, match="chunks_back"):
        sa.StreamingKeys.build(
            keys.rope,
            3,
            history_keys=keys.history_keys,
            history_values=keys.history_values,
            history_slots=[1, 1, 1],
            chunks_back=torch.full((3, 3), 9),
        )
    kernel = kernel_module()
    with pytest.raises(ValueError, match="whole latent frames"):
        kernel.streaming_attention_triton(q[:, :, :5], k[:, :, :5], v[:, :, :5], keys, 0)
