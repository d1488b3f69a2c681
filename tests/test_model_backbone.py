"""Backbone: streaming through the caches equals the masked full pass; positions never grow;
interleaved dual-audio parity; reference roles; the 17B preset's size."""

import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.backbone import Backbone
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.mask import context_mask


def make_config(**overrides) -> ModelConfig:
    return ModelConfig.from_name("test").with_overrides(**overrides)


def make_backbone(cfg: ModelConfig) -> Backbone:
    torch.manual_seed(0)
    backbone = Backbone(cfg).eval()
    # Audio output projections start at zero; give them weight so the audio path is exercised.
    for block in backbone.blocks:
        torch.nn.init.normal_(block.audio_attn.out.weight, std=0.1)
    if cfg.reference_concat:  # the front-latent input starts at zero; make it matter
        with torch.no_grad():
            backbone.patch_embed.weight[:, backbone.patch_dim :].normal_(0.0, 0.1)
    return backbone


def make_inputs(cfg: ModelConfig, n_chunks: int, batch: int = 1, n_refs: int = 3):
    """With cfg.reference_concat the second reference is the front view (the concatenated one)."""
    frames = n_chunks * cfg.chunk_latent_frames
    h = cfg.latent_size
    x = torch.randn(batch, cfg.latent_channels, frames, h, h)
    t = torch.rand(batch, frames)
    refs = torch.randn(batch, n_refs, cfg.latent_channels, h, h)
    roles = torch.tensor([[0, 1, 2][:n_refs]] * batch)
    labels = torch.tensor([[0, 2 if cfg.reference_concat else 1, 6][:n_refs]] * batch)
    audio = (batch, frames, cfg.n_audio_tokens, cfg.audio_dim)
    cond = Conditioning(
        text=torch.randn(batch, 5, cfg.text_dim),
        text_mask=torch.tensor([[True, True, True, False, False]] * batch),
        speak=torch.randn(audio),
        listen=torch.randn(audio),
    )
    return x, t, (refs, roles, labels, None), cond


def stream(backbone, cfg, x, t, refs, cond, ring=None):
    """Chunk by chunk through the history ring: each chunk one pass, then commit."""
    latents, roles, labels, _ = refs
    cache = backbone.encode_references(latents[0], roles[0], labels[0])
    if ring is None:
        ring = HistoryRing(
            cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, cfg.history_chunks
        )
    outs = []
    step = cfg.chunk_latent_frames
    for start in range(0, x.shape[2], step):
        history = HistoryBatch([ring])
        out = backbone.forward_chunk(
            x[:, :, start : start + step],
            t[:, start : start + step],
            ReferenceBatch([cache]),
            cond.frames(start, start + step),
            history,
            write_history=True,
        )
        history.commit()
        outs.append(out)
    return torch.cat(outs, dim=2), ring


def rel_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("reference_concat", [False, True])
@pytest.mark.parametrize("chunk_latent_frames", [1, 2])
def test_streaming_equals_block_causal_full_pass_with_wrapped_ring(
    chunk_latent_frames, reference_concat
):
    cfg = make_config(chunk_latent_frames=chunk_latent_frames, reference_concat=reference_concat)
    backbone = make_backbone(cfg)
    n_chunks = cfg.history_chunks + 3  # the ring wraps (2 slots, 5 chunks)
    x, t, refs, cond = make_inputs(cfg, n_chunks)
    with torch.no_grad():
        full = backbone.forward_train(x, t, refs, cond, mode="causal")
        streamed, ring = stream(backbone, cfg, x, t, refs, cond)
    assert ring.pos == n_chunks and ring.length == cfg.history_chunks
    assert rel_error(streamed, full) <= 1e-5


def test_causal_mode_hides_the_future_and_differs_from_teacher_mode():
    cfg = make_config()
    backbone = make_backbone(cfg)
    x, t, refs, cond = make_inputs(cfg, 5)
    with torch.no_grad():
        causal = backbone.forward_train(x, t, refs, cond, mode="causal")
        bidirectional = backbone.forward_train(x, t, refs, cond, mode="bidirectional")
        changed = x.clone()
        changed[:, :, 4] += 1.0  # the last chunk
        causal_changed = backbone.forward_train(changed, t, refs, cond, mode="causal")
        bidirectional_changed = backbone.forward_train(changed, t, refs, cond, mode="bidirectional")
    assert rel_error(causal[:, :, -1], bidirectional[:, :, -1]) > 1e-3
    assert torch.equal(causal[:, :, :4], causal_changed[:, :, :4])
    assert not torch.equal(bidirectional[:, :, :4], bidirectional_changed[:, :, :4])


def test_context_mask_shape():
    mask = context_mask(6, 2, 3, 1, causal=True)
    assert mask.shape == (18, 18)
    # chunk 2 (tokens 12..17) sees chunks 1 and 2, not 0
    assert mask[12, 6:].all() and not mask[12, :6].any()


def test_chunk_output_independent_of_absolute_index():
    """Same history and inputs at chunk 5 and at chunk 5 + 10**6: bit-identical output."""
    cfg = make_config()
    backbone = make_backbone(cfg)
    x, t, refs, cond = make_inputs(cfg, 6)
    with torch.no_grad():
        out_early, ring = stream(backbone, cfg, x[:, :, :5], t[:, :5], refs, cond)
        late = HistoryRing(
            cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, cfg.history_chunks
        )
        # Pretend 10**6 chunks have gone by: same slot contents, ring pointer in the same phase.
        late.keys.copy_(ring.keys)
        late.values.copy_(ring.values)
        late._committed = ring.pos + 10**6
        late._next = ring._next
        cache = backbone.encode_references(refs[0][0], refs[1][0], refs[2][0])
        outs = [
            backbone.forward_chunk(
                x[:, :, 5:6],
                t[:, 5:6],
                ReferenceBatch([cache]),
                cond.frames(5, 6),
                HistoryBatch([r]),
            )
            for r in (ring, late)
        ]
    assert torch.equal(outs[0], outs[1])


def test_audio_layer_parity():
    """Even layers read SPEAK, odd layers read LISTEN: zeroing one track changes only the hidden
    state after the first layer that reads it."""
    cfg = make_config()
    backbone = make_backbone(cfg)
    x, t, refs, cond = make_inputs(cfg, 1)
    captured = {}

    def hook(name):
        def fn(module, args, output):
            captured[name].append(output.detach().clone())

        return fn

    handles = []
    for i, block in enumerate(backbone.blocks):
        captured[i] = []
        handles.append(block.register_forward_hook(hook(i)))
    variants = {
        "both": cond,
        "no_speak": Conditioning(
            cond.text, cond.text_mask, torch.zeros_like(cond.speak), cond.listen
        ),
        "no_listen": Conditioning(
            cond.text, cond.text_mask, cond.speak, torch.zeros_like(cond.listen)
        ),
    }
    with torch.no_grad():
        for c in variants.values():
            backbone.forward_train(x, t, None, c, mode="causal")  # no reference passes
    for h in handles:
        h.remove()
    assert [b.audio_track for b in backbone.blocks] == ["speak", "listen", "speak", "listen"]
    # captured[i] = [both, no_speak, no_listen]
    assert not torch.equal(captured[0][0], captured[0][1])  # layer 0 reads speak
    assert torch.equal(captured[0][0], captured[0][2])  # ... not listen
    assert not torch.equal(captured[1][0], captured[1][2])  # layer 1 is the first to read listen


@pytest.mark.parametrize("reference_concat", [False, True])
def test_references_are_used_and_roles_matter(reference_concat):
    cfg = make_config(reference_concat=reference_concat)
    backbone = make_backbone(cfg)
    x, t, refs, cond = make_inputs(cfg, 2)
    latents, roles, labels, _ = refs
    with torch.no_grad():
        base = backbone.forward_train(x, t, refs, cond)
        other_roles = backbone.forward_train(x, t, (latents, roles.flip(1), labels, None), cond)
        no_refs = backbone.forward_train(x, t, None, cond)
        dropped = backbone.forward_train(
            x, t, refs, Conditioning(**{**cond.__dict__, "refs_keep": torch.zeros(1)})
        )
    assert rel_error(other_roles, base) > 1e-4
    assert rel_error(dropped, no_refs) <= 1e-5


@pytest.mark.parametrize("reference_concat", [False, True])
def test_batched_rows_are_independent(reference_concat):
    """Two sessions with rings of different fill in one call == each alone."""
    cfg = make_config(reference_concat=reference_concat)
    backbone = make_backbone(cfg)
    x, t, refs, cond = make_inputs(cfg, 4)
    with torch.no_grad():
        _, ring_a = stream(backbone, cfg, x[:, :, :3], t[:, :3], refs, cond)
        _, ring_b = stream(backbone, cfg, x[:, :, :1], t[:, :1], refs, cond)
        cache = backbone.encode_references(refs[0][0], refs[1][0], refs[2][0])
        small = backbone.encode_references(refs[0][0, :1], refs[1][0, :1], refs[2][0, :1])
        c = cond.frames(3, 4)
        alone = [
            backbone.forward_chunk(
                x[:, :, 3:4], t[:, 3:4], ReferenceBatch([rc]), c, HistoryBatch([r])
            )
            for rc, r in ((cache, ring_a), (small, ring_b))
        ]
        both = backbone.forward_chunk(
            torch.cat([x[:, :, 3:4]] * 2),
            torch.cat([t[:, 3:4]] * 2),
            ReferenceBatch([cache, small]),
            Conditioning.stack([c, c]),
            HistoryBatch([ring_a, ring_b]),
        )
    assert rel_error(both[0:1], alone[0]) <= 1e-5
    assert rel_error(both[1:2], alone[1]) <= 1e-5


def test_lpm_17b_parameter_count_on_meta_device():
    cfg = ModelConfig.from_name("lpm-17b")
    with torch.device("meta"):
        backbone = Backbone(cfg)
    n = sum(p.numel() for p in backbone.parameters())
    assert 16.5e9 <= n <= 17.5e9, n
