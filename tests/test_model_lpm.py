"""LPM bundle: Base LPM teacher sampling with guidance, training-pass gradients, `lpm-npc info`."""

import json

import torch

from lpm_npc.cli import main
from lpm_npc.config import ModelConfig
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.lpm import LPM

CFG = ModelConfig.from_name("test")


def inputs(frames=2):
    h = CFG.latent_size
    refs = (
        torch.randn(1, 2, CFG.latent_channels, h, h),
        torch.tensor([[0, 1]]),
        torch.tensor([[1, 2]]),
        None,
    )
    audio = (1, frames, CFG.n_audio_tokens, CFG.audio_dim)
    cond = Conditioning(
        torch.randn(1, 3, CFG.text_dim), None, torch.randn(audio), torch.randn(audio)
    )
    return torch.randn(1, CFG.latent_channels, frames, h, h), refs, cond


def test_base_lpm_sampling_with_independent_guidance():
    torch.manual_seed(0)
    model = LPM(CFG).eval()
    noise, refs, cond = inputs()
    plain = model.sample_base(noise, refs, cond, steps=2)
    guided = model.sample_base(noise, refs, cond, steps=2, guidance={"text": 2.0, "refs": 1.0})
    again = model.sample_base(noise, refs, cond, steps=2, guidance={"text": 2.0, "refs": 1.0})
    assert plain.shape == noise.shape and torch.isfinite(guided).all()
    assert torch.equal(guided, again)
    assert not torch.allclose(plain, guided)


def test_gradients_flow_in_training_and_streaming_passes():
    """forward_train trains every part; forward_chunk (Self-Forcing rollout) backpropagates
    through the current chunk while the ring holds detached K/V."""
    torch.manual_seed(0)
    backbone = LPM(CFG).backbone
    x, refs, cond = inputs(frames=2)
    t = torch.rand(1, 2)
    backbone.forward_train(x, t, refs, cond, mode="causal").square().mean().backward()
    assert backbone.patch_embed.weight.grad is not None
    assert backbone.reference_embed.role.weight.grad is not None
    backbone.zero_grad()
    ring = HistoryRing(CFG.n_layers, CFG.n_heads, CFG.head_dim, CFG.tokens_per_chunk, 2)
    cache = backbone.encode_references(refs[0][0], refs[1][0], refs[2][0])
    history = HistoryBatch([ring])
    backbone.forward_chunk(
        x[:, :, :1],
        t[:, :1],
        ReferenceBatch([cache]),
        cond.frames(0, 1),
        history,
        write_history=True,
    )
    history.commit()
    assert not ring.keys.requires_grad
    out = backbone.forward_chunk(
        x[:, :, 1:], t[:, 1:], ReferenceBatch([cache]), cond.frames(1, 2), HistoryBatch([ring])
    )
    out.square().mean().backward()
    assert backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_info_cli_reports_sizes(capsys):
    assert main(["info", "--preset", "lpm-17b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 16.5e9 <= info["params_backbone"] <= 17.5e9
    assert info["tokens_per_chunk"] == 1024 and info["frames_per_chunk"] == 4
    assert info["params"] > info["params_backbone"] + info["params_refiner"]
    assert info["flops_per_chunk"] > 0 and info["chunk_ms"] == 166.5
