"""The image-to-video lever (`ModelConfig.reference_concat`): which latent is concatenated, that it
enters the backbone only, that it starts as the model without it, the generator keeps it per
character, the warm start widens old weights, the CLI parses it and the ONNX export refuses it.
(Streaming == full pass and batched == alone with the lever on: tests/test_model_backbone.py,
tests/test_generator.py; stages and export: tests/test_latent_data.py.)"""

import numpy as np
import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.model.backbone import Backbone
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.lpm import LPM
from lpm_npc.model.references import front_reference, role_ids

CFG = ModelConfig.from_name("test-tiny")
ON = CFG.with_overrides(reference_concat=True)


def inputs(cfg, frames=2, n_refs=3):
    h = cfg.latent_size
    x = torch.randn(1, cfg.latent_channels, frames, h, h)
    t = torch.rand(1, frames)
    roles, labels = role_ids([("expression", "smile"), ("view", "front"), ("global", "scene")])
    refs = (torch.randn(1, n_refs, cfg.latent_channels, h, h), roles[None], labels[None], None)
    audio = (1, frames, cfg.n_audio_tokens, cfg.audio_dim)
    cond = Conditioning(
        text=torch.randn(1, 3, cfg.text_dim),
        text_mask=None,
        speak=torch.randn(audio),
        listen=torch.randn(audio),
    )
    return x, t, refs, cond


def test_front_reference_is_the_front_view_else_the_global_shot_else_the_first():
    latents = torch.arange(2 * 3, dtype=torch.float32).reshape(2, 3, 1, 1, 1)
    roles, labels = role_ids([("expression", "smile"), ("global", "scene"), ("view", "front")])
    roles, labels = roles[None].repeat(2, 1), labels[None].repeat(2, 1)
    assert front_reference(latents, roles, labels).flatten().tolist() == [2.0, 5.0]
    valid = torch.tensor([[True, True, False], [True, False, False]])  # front / global padded
    assert front_reference(latents, roles, labels, valid).flatten().tolist() == [1.0, 3.0]
    none = torch.zeros(2, 3, dtype=torch.bool)
    assert front_reference(latents, roles, labels, none).abs().sum() == 0


def test_only_the_backbone_patch_embedding_widens():
    off, on = LPM(CFG).state_dict(), LPM(ON).state_dict()
    assert off.keys() == on.keys()
    changed = {k for k in off if off[k].shape != on[k].shape}
    assert changed == {"backbone.patch_embed.weight"}
    assert (
        on["backbone.patch_embed.weight"].shape[1]
        == 2 * off["backbone.patch_embed.weight"].shape[1]
    )


def test_zero_front_weights_compute_what_the_model_without_the_lever_does():
    """The lever starts at zero (and a warm start from old weights widens with zeros), so the
    flag-on model begins exactly as the flag-off one, in the full pass and in streaming."""
    from lpm_npc.train.recipe import with_concat_input

    torch.manual_seed(0)
    old, new = LPM(CFG), LPM(ON)
    state = old.state_dict()
    assert with_concat_input(state, CFG) is state  # flag off: untouched
    new.load_state_dict(with_concat_input(state, ON))
    off, on = old.backbone.eval(), new.backbone.eval()
    assert on.patch_embed.weight[:, on.patch_dim :].abs().sum() == 0
    x, t, refs, cond = inputs(CFG)
    with torch.no_grad():
        for mode in ("causal", "bidirectional"):
            torch.testing.assert_close(
                on.forward_train(x, t, refs, cond, mode=mode),
                off.forward_train(x, t, refs, cond, mode=mode),
                rtol=1e-5,
                atol=1e-6,
            )
        outs = []
        for dit in (on, off):
            cache = dit.encode_references(refs[0][0], refs[1][0], refs[2][0])
            ring = HistoryRing(CFG.n_layers, CFG.n_heads, CFG.head_dim, CFG.tokens_per_chunk, 2)
            outs.append(
                dit.forward_chunk(
                    x[:, :, :1], t[:, :1], ReferenceBatch([cache]), cond, HistoryBatch([ring])
                )
            )
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
        # Once it has weight, the front latent changes the prediction, and only the front does.
        with torch.no_grad():
            on.patch_embed.weight[:, on.patch_dim :].normal_(0.0, 0.1)
        lifted = on.forward_train(x, t, refs, cond)
        assert not torch.allclose(lifted, off.forward_train(x, t, refs, cond))
        other = refs[0].clone()
        other[:, 0] += 1.0  # an expression, not the front view: reaches only the reference K/V
        moved_front = refs[0].clone()
        moved_front[:, 1] += 1.0
        no_kv = Conditioning(**{**cond.__dict__, "refs_keep": torch.zeros(1)})
        dropped = on.forward_train(x, t, refs, no_kv)
        dropped_other = on.forward_train(x, t, (moved_front, *refs[1:]), no_kv)
        torch.testing.assert_close(dropped, dropped_other)  # dropped refs: no front either
        assert not torch.allclose(lifted, on.forward_train(x, t, (moved_front, *refs[1:]), cond))


def test_generator_keeps_the_front_latent_per_character():
    torch.manual_seed(0)
    model = LPM(ON)
    generator = StreamingGenerator(ON, model)
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    roles = [("expression", "smile"), ("view", "front"), ("global", "scene")]
    prepared = generator.prepare(images, roles, name="c")
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = model.vae.encode_image(pixels)  # what the reference path encodes
    torch.testing.assert_close(prepared.backbone_refs.front, latents[1])  # the front view's
    assert prepared.refiner_refs.front is None  # the refiner is a separate net, unchanged
    no_front = generator.prepare(images[::2], roles[::2], name="d")  # expression + global
    torch.testing.assert_close(no_front.backbone_refs.front, latents[2])
    state = generator.open(prepared, seed=1)
    from lpm_npc.engine.protocol import ChunkAudio

    silence = np.zeros(ON.samples_per_chunk, np.float32)
    (out,) = generator.step([state], [ChunkAudio(0, silence, silence)])
    assert out.frames.shape == (4, 32, 32, 3)


def test_missing_front_latent_is_an_error_not_a_silent_zero():
    torch.manual_seed(0)
    off, on = Backbone(CFG).eval(), Backbone(ON).eval()
    x, t, refs, cond = inputs(CFG)
    cache = off.encode_references(refs[0][0], refs[1][0], refs[2][0])  # no front stored
    with pytest.raises(ValueError, match="reference_concat"), torch.no_grad():
        on.forward_chunk(x[:, :, :1], t[:, :1], ReferenceBatch([cache]), cond)


def test_model_override_parses_bools():
    from lpm_npc.commands.train import _model_config

    assert _model_config("test", ["reference_concat=true"]).reference_concat is True
    assert _model_config("test", ["reference_concat=False"]).reference_concat is False
    with pytest.raises(ValueError, match="reference_concat takes true or false"):
        _model_config("test", ["reference_concat=maybe"])
    with pytest.raises(ValueError, match="must be a bool"):
        ModelConfig.from_name("test").with_overrides(reference_concat="yes")


def test_onnx_export_refuses_the_lever(tmp_path):
    pytest.importorskip("onnx")
    from lpm_npc.onnx.export import export_onnx

    with pytest.raises(ValueError, match="reference_concat"):
        export_onnx(LPM(ON), tmp_path / "onnx", config={"preset": ON.name, "overrides": {}})
    assert not (tmp_path / "onnx").exists()
