"""The streaming-attention reference and kernel compute what `DiT.forward_chunk` computes.

On the `test` preset, two sessions with different ring fill (one wrapped) and reference counts go
through one `forward_chunk`; every layer's un-roped q/k/v and its self-attention output (the input
of the output projection) are recorded, and the same layer is recomputed from the caches in place
with `StreamingKeys` (built the way the backbone wiring does). Before the backbone calls the
dispatch this pins the reference to the SDPA-over-concatenated-keys path; after, the backbone's
own streaming == full-pass test (tests/test_model_backbone.py) keeps pinning it, and the second
test here runs whole chunks with the kernel forced.
"""

from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module is imported

import pytest  # noqa: E402
import torch  # noqa: E402
from lpm_npc.kernels import dispatch  # noqa: E402
from lpm_npc.kernels import streaming_attention as sa  # noqa: E402

from lpm_npc.config import ModelConfig  # noqa: E402
from lpm_npc.model.attention import SelfAttention, merge_heads  # noqa: E402
from lpm_npc.model.backbone import Backbone  # noqa: E402
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch  # noqa: E402
from lpm_npc.model.conditioning import Conditioning  # noqa: E402
from lpm_npc.train.rollout import TrainReferences  # noqa: E402


def kernel_module():
    """The Triton launcher module, or skip where it cannot run on this machine."""
    pytest.importorskip("triton")
    if not dispatch.interpreter_requested():  # these tests run CPU tensors: the interpreter
        pytest.skip("needs TRITON_INTERPRET=1 set before the kernels are imported")
    from lpm_npc.kernels import streaming_attention_triton

    return streaming_attention_triton


def report(label: str, out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    err = (out.float() - ref.float()).abs()
    mx, mean = err.max().item(), err.mean().item()
    print(f"\n{label:<44} max {mx:.3e}  mean {mean:.3e}")
    return mx, mean


def streaming_keys(model: Backbone, refs, history, refs_keep, batch: int) -> sa.StreamingKeys:
    """What the backbone builds once per `forward_chunk` (see docs/perf.md)."""
    return model._streaming_keys(refs, history, refs_keep, batch, torch.device("cpu"))


def make_session_inputs(cfg: ModelConfig, frames: int, n_refs: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    h = cfg.latent_size
    x = torch.randn(1, cfg.latent_channels, frames, h, h, generator=gen)
    t = torch.rand(1, frames, generator=gen)
    refs = torch.randn(n_refs, cfg.latent_channels, h, h, generator=gen)
    audio = (1, frames, cfg.n_audio_tokens, cfg.audio_dim)
    cond = Conditioning(
        text=torch.randn(1, 3, cfg.text_dim, generator=gen),
        text_mask=None,
        speak=torch.randn(audio, generator=gen),
        listen=torch.randn(audio, generator=gen),
    )
    return x, t, refs, cond


def fill_ring(model: Backbone, cfg: ModelConfig, cache, chunks: int, seed: int) -> HistoryRing:
    ring = HistoryRing(
        cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, cfg.history_chunks
    )
    step = cfg.chunk_latent_frames
    x, t, _, cond = make_session_inputs(cfg, chunks * step, 1, seed)
    for start in range(0, chunks * step, step):
        history = HistoryBatch([ring])
        model.forward_chunk(
            x[:, :, start : start + step],
            t[:, start : start + step],
            ReferenceBatch([cache]),
            cond.frames(start, start + step),
            history,
            write_history=True,
        )
        history.commit()
    return ring


@pytest.mark.parametrize(
    ("chunk_latent_frames", "refs_keep", "rollout_refs"),
    [(1, (0.0, 1.0), False), (2, None, False), (1, None, True)],
    ids=["L1-refs-dropped-in-row0", "L2-refs-kept", "L1-rollout-references-masked"],
)
def test_reference_and_kernel_equal_forward_chunk_attention(
    chunk_latent_frames: int, refs_keep, rollout_refs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = ModelConfig.from_name("test").with_overrides(chunk_latent_frames=chunk_latent_frames)
    torch.manual_seed(0)
    model = Backbone(cfg).eval()
    step = cfg.chunk_latent_frames
    with torch.no_grad():
        _, _, refs_a, _ = make_session_inputs(cfg, step, 3, seed=1)
        _, _, refs_b, _ = make_session_inputs(cfg, step, 1, seed=2)
        roles = torch.tensor([0, 1, 2])
        cache_a = model.encode_references(refs_a, roles, roles)
        cache_b = model.encode_references(refs_b, roles[:1], roles[:1])
        ring_a = fill_ring(model, cfg, cache_a, cfg.history_chunks + 1, seed=3)  # wrapped
        ring_b = fill_ring(model, cfg, cache_b, 1, seed=4)  # one slot of two
    assert ring_a.length == cfg.history_chunks and ring_a.chunks_back(0) == 1
    x, t, _, cond = make_session_inputs(cfg, step, 1, seed=5)
    cond = Conditioning.stack([cond, cond])
    if refs_keep is not None:
        cond = replace(cond, refs_keep=torch.tensor(refs_keep))

    refs = ReferenceBatch([cache_a, cache_b])
    if rollout_refs:  # the self-rollout's layout: batched, with a non-prefix validity mask
        latents = torch.stack([refs_a, refs_a.flip(0)])
        valid = torch.tensor([[True, False, True], [False, True, True]])
        roles3 = torch.stack([roles, roles])
        with torch.no_grad():
            refs = TrainReferences.build(model, (latents, roles3, roles3, valid))

    # Record each layer's un-roped q/k/v and what its self-attention returned (the input of the
    # output projection), whatever forward_chunk does in between.
    projected: list[tuple[torch.Tensor, ...]] = []
    attended: list[torch.Tensor] = []
    project = SelfAttention.project

    def recording_project(self, x):
        out = project(self, x)
        projected.append(out)
        return out

    monkeypatch.setattr(SelfAttention, "project", recording_project)
    hooks = [
        block.attn.out.register_forward_pre_hook(lambda _, args: attended.append(args[0]))
        for block in model.blocks
    ]
    history = HistoryBatch([ring_a, ring_b])
    with torch.no_grad(), dispatch.force_backend("reference"):
        model.forward_chunk(torch.cat([x, x]), torch.cat([t, t]), refs, cond, history)
    monkeypatch.undo()
    for hook in hooks:
        hook.remove()
    assert len(projected) == len(attended) == cfg.n_layers

    keys = streaming_keys(model, refs, history, cond.refs_keep, 2)
    kernel = kernel_module()
    worst = 0.0
    for layer, ((q, k, v), expected) in enumerate(zip(projected, attended)):
        ref = merge_heads(sa.streaming_attention_reference(q, k, v, keys, layer))
        mx, _ = report(f"reference vs forward_chunk L={step} layer {layer}", ref, expected)
        assert mx <= 2e-6
        if layer not in (0, cfg.n_layers - 1):  # the interpreter is slow: first and last layer
            continue
        out = kernel.streaming_attention_triton(q, k, v, keys, layer, block_m=16, block_n=16)
        out = merge_heads(out)
        worst = max(
            worst, report(f"kernel vs forward_chunk L={step} layer {layer}", out, expected)[0]
        )
    assert worst <= 2e-5


def test_forward_chunk_with_the_kernel_forced_matches_the_reference() -> None:
    """A whole chunk through the backbone with the backend forced to the kernel, then to the
    reference (identical until the backbone is wired to `attend_streaming`)."""
    kernel_module()
    cfg = ModelConfig.from_name("test")
    torch.manual_seed(0)
    model = Backbone(cfg).eval()
    with torch.no_grad():
        _, _, refs_a, _ = make_session_inputs(cfg, 1, 2, seed=1)
        roles = torch.tensor([0, 1])
        cache = model.encode_references(refs_a, roles, roles)
        ring = fill_ring(model, cfg, cache, cfg.history_chunks + 1, seed=3)
        x, t, _, cond = make_session_inputs(cfg, 1, 1, seed=5)
        outs = []
        for backend in ("triton", "reference"):
            with dispatch.force_backend(backend):
                outs.append(
                    model.forward_chunk(x, t, ReferenceBatch([cache]), cond, HistoryBatch([ring]))
                )
    mx, _ = report("forward_chunk kernel vs reference", outs[0], outs[1])
    assert mx <= 1e-4
