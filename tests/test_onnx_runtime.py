"""The ONNX backend's pieces that need no export: options, manifest I/O, weight digests, the CLI's
argument errors, the frame conversion, and the export wrappers run eagerly on edge configs."""

import dataclasses

import numpy as np
import pytest
import torch

from lpm_npc.cli import main
from lpm_npc.config import ModelConfig
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.lpm import LPM
from lpm_npc.onnx.manifest import GRAPHS, GraphSpec, Manifest, TensorSpec, weights_digest
from lpm_npc.onnx.wrappers import BackbonePass

CFG = ModelConfig.from_name("test").with_overrides(n_layers=2, refiner_layers=1)


def small_model(seed: int, cfg: ModelConfig = CFG) -> LPM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LPM(cfg).eval().requires_grad_(False)


def test_options_name_the_bad_field():
    runtime = pytest.importorskip("lpm_npc.onnx.runtime")
    with pytest.raises(ValueError, match="graph_optimization"):
        runtime.OrtOptions(graph_optimization="fast")
    with pytest.raises(ValueError, match="intra_op_threads"):
        runtime.OrtOptions(intra_op_threads=-1)
    with pytest.raises(ValueError, match="decoder_variant"):
        runtime.OrtOptions(decoder_variant="int4")
    providers = runtime.default_providers()
    assert providers[-1] == runtime.CPU  # CPU is always the fallback


def manifest_with(tmp_path, graphs: dict[str, GraphSpec]) -> Manifest:
    manifest = Manifest(
        model="test",
        config={"preset": "test", "overrides": {}},
        checkpoint_sha256=None,
        weights_sha256="0" * 64,
        opset=18,
        torch=torch.__version__,
        graphs=graphs,
    )
    for graph in graphs.values():
        (tmp_path / graph.file).write_bytes(b"")
    manifest.write(tmp_path)
    return manifest


def test_manifest_round_trip_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Manifest.read(tmp_path)
    spec = GraphSpec(
        "x.onnx",
        (TensorSpec("latents", ("batch", 4, 1, 8, 8), "float32"),),
        (TensorSpec("video", ("batch", 3, 4, 64, 64), "float32"),),
    )
    graphs = {name: dataclasses.replace(spec, file=f"{name}.onnx") for name in GRAPHS}
    written = manifest_with(tmp_path, graphs)
    assert Manifest.read(tmp_path) == written
    (tmp_path / "decoder.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="decoder"):
        Manifest.read(tmp_path)
    manifest_with(tmp_path, {k: v for k, v in graphs.items() if k != "refiner"})
    with pytest.raises(ValueError, match="refiner"):
        Manifest.read(tmp_path)


def test_weights_digest_identifies_the_weights():
    a, b = small_model(0), small_model(0)
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.refiner.head.bias[0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_export_command_argument_errors(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["export", "onnx", "--random-weights", "--checkpoint", out, "--out", out]) == 2
    assert "exclude" in capsys.readouterr().err
    assert main(["export", "onnx", "--checkpoint", str(tmp_path / "none"), "--out", out]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written on a refused export


def test_frames_to_uint8_clamps_and_resizes():
    pytest.importorskip("onnxruntime")
    from lpm_npc.onnx.generator import frames_to_uint8

    video = np.zeros((3, 2, 8, 8), np.float32)
    video[:, 0] = -3.0  # clamped to -1 -> 0
    video[:, 1] = 1.0
    frames = frames_to_uint8(video, 8)
    assert frames.shape == (2, 8, 8, 3) and frames.dtype == np.uint8
    assert frames[0].max() == 0 and frames[1].min() == 255
    assert frames_to_uint8(video, 20).shape == (2, 20, 20, 3)


def test_backbone_wrapper_without_history_uses_one_invalid_slot():
    """history_chunks = 0: the generator feeds one never-valid slot and never commits."""
    cfg = CFG.with_overrides(history_chunks=0)
    model = small_model(1, cfg)
    refs = model.backbone.encode_references(
        torch.randn(2, cfg.latent_channels, cfg.latent_size, cfg.latent_size),
        torch.tensor([0, 1]),
        torch.tensor([0, 2]),
    )
    ring = HistoryRing(cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, 0)
    text, mask = model.text_encoder.encode_prompts(["calm"])
    audio = torch.randn(1, cfg.chunk_latent_frames, cfg.n_audio_tokens, cfg.audio_dim)
    cond = Conditioning(text, mask, audio, audio * 0.5)
    side = cfg.latent_size
    x_t = torch.randn(1, cfg.latent_channels, cfg.chunk_latent_frames, side, side)
    t = torch.full((1, cfg.chunk_latent_frames), 0.7)
    expected = model.backbone.forward_chunk(
        x_t, t, ReferenceBatch([refs]), cond, HistoryBatch([ring])
    )
    slot = torch.full((1, cfg.n_layers, cfg.n_heads, cfg.tokens_per_chunk, cfg.head_dim), 7.0)
    out = BackbonePass(model.backbone, cfg)(
        x_t,
        t,
        text,
        mask,
        audio,
        audio * 0.5,
        torch.stack(refs.keys)[None],
        torch.stack(refs.values)[None],
        torch.tensor([refs.n_tokens]),
        slot,
        slot,
        torch.zeros(1, dtype=torch.long),
        torch.zeros(1, dtype=torch.long),
        torch.tensor(False),
    )
    assert torch.allclose(out[0], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[1], slot) and int(out[4]) == 0  # not committed, still invalid
