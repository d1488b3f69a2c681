"""Ring write kernel vs its torch reference, and the roped ("local") ring layout end to end:
writing keys roped at chunk-local positions and attending with `history_roped=True` equals the
DESIGN layout (keys stored un-roped, roped in the attention)."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module is imported

import pytest  # noqa: E402
import torch  # noqa: E402
from lpm_npc.kernels import dispatch, ring_write  # noqa: E402
from lpm_npc.kernels import streaming_attention as sa  # noqa: E402
from lpm_npc.kernels.streaming_rope import StreamingRope  # noqa: E402

from lpm_npc.model.rope import Rope3D  # noqa: E402

# Max abs error on keys (values are copied exactly). The reference ropes fp16 keys in fp16, as the
# model does; the kernel ropes in fp32 and rounds once: up to ~2 fp16 ulps apart at |k| ~ 4.
TOLERANCE = {torch.float32: 1e-6, torch.float16: 4e-3}


def ring_kernel():
    pytest.importorskip("triton")
    if not dispatch.interpreter_requested():  # these tests run CPU tensors: the interpreter
        pytest.skip("needs TRITON_INTERPRET=1 set before the kernels are imported")
    from lpm_npc.kernels import ring_write_triton

    return ring_write_triton


def make_rings(rows: int, heads: int, slots: int, tokens: int, d: int, dtype, gen):
    return [torch.randn(heads, slots * tokens, d, generator=gen).to(dtype) for _ in range(rows)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("roped", [False, True], ids=["unroped", "roped"])
def test_ring_write_kernel_matches_reference(dtype: torch.dtype, roped: bool) -> None:
    kernel = ring_kernel()
    gen = torch.Generator().manual_seed(0)
    d, heads, rows, slots = 40, 2, 3, 3
    rope = StreamingRope.build(Rope3D(d), (3, 5), 1, 1, slots, "cpu")
    tokens = rope.tokens_per_slot  # 15: an odd count, one partial tile
    keys = torch.randn(rows, tokens, heads, d, generator=gen).to(dtype).transpose(1, 2)
    values = torch.randn(rows, tokens, heads, d, generator=gen).to(dtype).transpose(1, 2)
    expected_k = make_rings(rows, heads, slots, tokens, d, dtype, gen)
    expected_v = make_rings(rows, heads, slots, tokens, d, dtype, gen)
    got_k = [x.clone() for x in expected_k]
    got_v = [x.clone() for x in expected_v]
    slot_of_row = [2, 0, 1]
    use_rope = rope if roped else None
    ring_write.ring_write_reference(
        keys, values, expected_k, expected_v, slot_of_row, rope=use_rope
    )
    kernel.ring_write_triton(keys, values, got_k, got_v, slot_of_row, rope=use_rope, block_t=8)
    for row in range(rows):
        err_k = (got_k[row].float() - expected_k[row].float()).abs().max().item()
        err_v = (got_v[row].float() - expected_v[row].float()).abs().max().item()
        print(
            f"\nring_write {dtype} roped={roped} row {row}: keys max {err_k:.3e}, values {err_v:.3e}"
        )
        assert err_k <= TOLERANCE[dtype] and err_v == 0.0
        # Slots other than the written one are untouched.
        other = torch.ones(slots * tokens, dtype=torch.bool)
        other[slot_of_row[row] * tokens : (slot_of_row[row] + 1) * tokens] = False
        assert torch.equal(got_k[row][:, other], expected_k[row][:, other])


def test_roped_ring_layout_attends_like_the_unroped_one() -> None:
    """Fill two rings chunk by chunk with ring_write (one un-roped, one roped at local positions);
    attention over each, told its layout, agrees."""
    ring_kernel()
    from lpm_npc.kernels import streaming_attention_triton as attention_kernel

    gen = torch.Generator().manual_seed(1)
    d, heads, slots = 32, 2, 2
    rope = StreamingRope.build(Rope3D(d), (3, 3), 2, 1, slots, "cpu")
    tokens = rope.tokens_per_slot
    plain = [torch.zeros(heads, slots * tokens, d)]
    plain_v = [torch.zeros(heads, slots * tokens, d)]
    roped = [torch.zeros(heads, slots * tokens, d)]
    roped_v = [torch.zeros(heads, slots * tokens, d)]
    committed = 3  # the ring wraps
    with dispatch.force_backend("triton"):
        for chunk in range(committed):
            k = torch.randn(1, heads, tokens, d, generator=gen)
            v = torch.randn(1, heads, tokens, d, generator=gen)
            ring_write.ring_write(k, v, plain, plain_v, [chunk % slots])
            ring_write.ring_write(k, v, roped, roped_v, [chunk % slots], rope=rope)
    back = torch.tensor([[(committed % slots - 1 - s) % slots + 1 for s in range(slots)]])
    q, k, v = (torch.randn(1, heads, tokens, d, generator=gen) for _ in range(3))
    outs = []
    for ring_k, ring_v, layout in ((plain, plain_v, False), (roped, roped_v, True)):
        keys = sa.StreamingKeys.build(
            rope,
            1,
            history_keys=[ring_k[0][None]],
            history_values=[ring_v[0][None]],
            chunks_back=back,
            history_roped=layout,
        )
        ref = sa.streaming_attention_reference(q, k, v, keys, 0)
        out = attention_kernel.streaming_attention_triton(q, k, v, keys, 0, block_m=16, block_n=16)
        assert (out - ref).abs().max().item() <= 2e-6
        outs.append(out)
    err = (outs[0] - outs[1]).abs().max().item()
    print(f"\nroped ring layout vs un-roped: max {err:.3e}")
    assert err <= 2e-6


def test_ring_write_rejects_a_slot_outside_the_ring() -> None:
    keys = torch.zeros(1, 2, 4, 8)
    ring = [torch.zeros(2, 8, 8)]
    with pytest.raises(ValueError, match="slots"):
        ring_write.ring_write_reference(keys, keys, ring, ring, [2])
