"""ONNX export vs eager torch: every graph within 1e-4 relative (fp32), a multi-chunk streaming run
through a wrapping history ring, and the onnxruntime generator's frames against the torch one's.

One export per module (the CLI, from a checkpoint of the `test` preset with 2 backbone layers and
1 refiner layer, every zero-initialised weight made non-zero so the audio cross-attention and the
VAE's residual and temporal branches really run) keeps the file fast, and so does one thread for
torch and onnxruntime: on a loaded 2-core machine two spinning threads made a step ~30x slower.
"""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from lpm_npc.cli import main  # noqa: E402
from lpm_npc.config import ModelConfig  # noqa: E402
from lpm_npc.digest import file_sha256  # noqa: E402
from lpm_npc.engine.generator import StreamingGenerator  # noqa: E402
from lpm_npc.engine.protocol import ChunkAudio  # noqa: E402
from lpm_npc.engine.weights import load_lpm, save_lpm  # noqa: E402
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch  # noqa: E402
from lpm_npc.model.conditioning import Conditioning  # noqa: E402
from lpm_npc.model.lpm import LPM  # noqa: E402
from lpm_npc.onnx.generator import OnnxStreamingGenerator  # noqa: E402
from lpm_npc.onnx.manifest import Manifest, weights_digest  # noqa: E402
from lpm_npc.onnx.runtime import OrtOptions, load_graphs  # noqa: E402

OVERRIDES = {"n_layers": 2, "refiner_layers": 1}
CFG = ModelConfig.from_name("test").with_overrides(**OVERRIDES)
TOLERANCE = 1e-4  # max |onnx - torch| / max |torch|, fp32
MIN_PSNR_DB = 50.0  # frames of the two backends (measured: > 90 dB, at most 1 level apart)
ROLES = [("global", ""), ("view", "front"), ("expression", "smile")]
PROMPTS = ["cheerful", "sad and tired, arms crossed", ""]
ONE_THREAD = OrtOptions(intra_op_threads=1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rel_err(onnx_value: np.ndarray, torch_value) -> float:
    reference = np.asarray(torch_value.detach() if hasattr(torch_value, "detach") else torch_value)
    return float(np.abs(onnx_value - reference).max() / max(np.abs(reference).max(), 1e-12))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(cfg, model, checkpoint dir, export dir) of one CLI export."""
    root = tmp_path_factory.mktemp("onnx")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LPM(CFG).eval().requires_grad_(False)
        for param in model.parameters():
            if not param.any():  # zero-initialised branches would hide their cache paths
                param.copy_(torch.randn(param.shape) * 0.05)
    checkpoint = save_lpm(
        model, root / "ckpt", preset="test", overrides=OVERRIDES, dtype=torch.float32
    )
    out = root / "export"
    assert main(["export", "onnx", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    cfg, model = load_lpm(checkpoint)
    return cfg, model.requires_grad_(False), checkpoint, out


@pytest.fixture(scope="module")
def graphs(exported):
    return load_graphs(exported[3], ONE_THREAD)[1]


def references(model, n_refs: int, seed: int):
    """(backbone ReferenceCache, refiner ReferenceCache) of n_refs random reference images."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(
        n_refs, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=gen
    )
    role = torch.tensor([0, 1, 2][:n_refs])
    label = torch.tensor([0, 2, 6][:n_refs])
    return (
        model.backbone.encode_references(latents, role, label),
        model.refiner.encode_references(latents, role, label),
    )


def stacked(caches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReferenceCaches -> padded (B, n, H, Kr, D) keys, values and valid lengths, as the graph."""
    width = max(c.n_tokens for c in caches)
    keys, values = [], []
    for c in caches:
        pad = (0, 0, 0, width - c.n_tokens)
        keys.append(torch.nn.functional.pad(torch.stack(c.keys), pad))
        values.append(torch.nn.functional.pad(torch.stack(c.values), pad))
    lengths = np.array([c.n_tokens for c in caches], dtype=np.int64)
    return torch.stack(keys).numpy(), torch.stack(values).numpy(), lengths


def test_manifest_names_shapes_and_checkpoint_hash(exported):
    cfg, model, checkpoint, out = exported
    manifest = Manifest.read(out)
    assert manifest.checkpoint_sha256 == file_sha256(checkpoint / "model.safetensors")
    assert manifest.weights_sha256 == weights_digest(model)
    assert manifest.config == json.loads((checkpoint / "config.json").read_text())
    backbone = {t.name: t for t in manifest.graphs["backbone"].inputs}
    ring = ["batch", cfg.n_layers, cfg.n_heads, "history_tokens", cfg.head_dim]
    assert list(backbone["history_keys"].shape) == ring
    assert list(backbone["reference_values"].shape)[3] == "reference_tokens"
    assert backbone["commit"].dtype == "bool" and backbone["history_next"].dtype == "int64"
    outputs = manifest.graphs["backbone"].output_names()
    assert outputs == ["prediction"] + [
        f"{n}_out" for n in ("history_keys", "history_values", "history_next", "history_length")
    ]
    decoder = manifest.graphs["decoder"]
    assert [t.name for t in decoder.outputs][1:] == [f"{t.name}_out" for t in decoder.inputs][1:]
    assert all(t.shape[0] == "batch" for g in manifest.graphs.values() for t in g.inputs[:1])


def test_audio_step_streams_like_torch(exported, graphs):
    cfg, model, _, _ = exported
    encoder = model.audio_encoder
    tracks = torch.tensor([0, 1, 0])  # batch 3: not the traced batch of 2
    cache = encoder.init_cache(3)
    onnx_cache = [s.numpy().copy() for s in cache.slots]
    rng = np.random.default_rng(0)
    for _ in range(3):
        pcm = (rng.standard_normal((3, cfg.samples_per_chunk)) * 0.3).astype(np.float32)
        tokens = encoder.step(torch.from_numpy(pcm), tracks, cache)
        feeds = {"pcm": pcm, "track": tracks.numpy()}
        feeds.update({f"audio_cache_{i}": c for i, c in enumerate(onnx_cache)})
        out = graphs["audio"].run(feeds)
        assert rel_err(out["tokens"], tokens) <= TOLERANCE
        onnx_cache = [out[f"audio_cache_{i}_out"] for i in range(len(onnx_cache))]
        for mine, theirs in zip(onnx_cache, cache.slots):
            assert rel_err(mine, theirs) <= TOLERANCE


def test_decoder_step_streams_like_torch(exported, graphs):
    cfg, model, _, _ = exported
    for batch in (1, 3):
        cache = model.vae.init_decode_cache(batch)
        onnx_cache = [s.numpy().copy() for s in cache.slots]
        gen = torch.Generator().manual_seed(batch)
        for _ in range(3):
            shape = (batch, cfg.latent_channels, cfg.chunk_latent_frames)
            latents = torch.randn(*shape, cfg.latent_size, cfg.latent_size, generator=gen)
            video = model.vae.decode_step(latents, cache)
            feeds = {"latents": latents.numpy()}
            feeds.update({f"decode_cache_{i}": c for i, c in enumerate(onnx_cache)})
            out = graphs["decoder"].run(feeds)
            assert rel_err(out["video"], video) <= TOLERANCE
            onnx_cache = [out[f"decode_cache_{i}_out"] for i in range(len(onnx_cache))]
            assert max(rel_err(a, b) for a, b in zip(onnx_cache, cache.slots)) <= TOLERANCE


def conditioning(model, rows: list[int], frames: int, seed: int):
    """(torch Conditioning, graph feeds) for the given rows (each row its own prompt)."""
    cfg = model.cfg
    text, mask = model.text_encoder.encode_prompts([PROMPTS[r] for r in rows])
    gen = torch.Generator().manual_seed(seed)
    audio = (len(rows), frames, cfg.n_audio_tokens, cfg.audio_dim)
    speak, listen = torch.randn(audio, generator=gen), torch.randn(audio, generator=gen)
    feeds = {"text": text.numpy(), "text_mask": mask.numpy()}
    feeds.update({"speak": speak.numpy(), "listen": listen.numpy()})
    return Conditioning(text, mask, speak, listen), feeds


def test_backbone_streams_through_a_wrapping_ring(exported, graphs):
    """Rows with 1, 2 and 3 references join at different chunks, so their rings are at different
    phases; row 0 commits 6 chunks into a 2-slot ring. Every pass and every ring state matches."""
    cfg, model, _, _ = exported
    refs = [references(model, n, seed=n)[0] for n in (1, 2, 3)]
    rings = [
        HistoryRing(
            cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, cfg.history_chunks
        )
        for _ in refs
    ]
    ring_shape = (1, cfg.n_layers, cfg.n_heads, cfg.history_chunks * cfg.tokens_per_chunk)
    state = [
        {
            "history_keys": np.zeros((*ring_shape, cfg.head_dim), np.float32),
            "history_values": np.zeros((*ring_shape, cfg.head_dim), np.float32),
            "history_next": np.zeros(1, np.int64),
            "history_length": np.zeros(1, np.int64),
        }
        for _ in refs
    ]
    schedule = [[0], [0, 1], [0, 1, 2], [1, 2], [0, 2], [0, 1, 2], [0]]
    gen = torch.Generator().manual_seed(0)
    frames = cfg.chunk_latent_frames
    for chunk, rows in enumerate(schedule):
        cond, feeds = conditioning(model, rows, frames, seed=chunk)
        ref_batch, history = (
            ReferenceBatch([refs[r] for r in rows]),
            HistoryBatch([rings[r] for r in rows]),
        )
        keys, values, lengths = stacked([refs[r] for r in rows])
        feeds.update({"reference_keys": keys, "reference_values": values})
        feeds["reference_length"] = lengths
        for name in state[0]:
            feeds[name] = np.concatenate([state[r][name] for r in rows])
        shape = (len(rows), cfg.latent_channels, frames, cfg.latent_size, cfg.latent_size)
        for commit, level in ((False, 0.9), (True, cfg.context_noise)):
            x_t = torch.randn(shape, generator=gen)
            t = torch.full((len(rows), frames), level)
            expected = model.backbone.forward_chunk(
                x_t, t, ref_batch, cond, history, write_history=commit
            )
            feeds.update({"x_t": x_t.numpy(), "t": t.numpy(), "commit": np.array(commit)})
            out = graphs["backbone"].run(feeds)
            assert rel_err(out["prediction"], expected) <= TOLERANCE, (chunk, commit)
            if not commit:  # denoising passes hand the ring back unchanged
                assert np.array_equal(out["history_keys_out"], feeds["history_keys"])
                assert np.array_equal(out["history_length_out"], feeds["history_length"])
        history.commit()
        for i, r in enumerate(rows):
            for name in state[r]:
                state[r][name] = out[f"{name}_out"][i : i + 1]
            ring = rings[r]
            # chunks_back(0) = (next - 1) mod S + 1, so next = chunks_back(0) mod S.
            assert int(state[r]["history_next"][0]) == ring.chunks_back(0) % ring.slots
            assert int(state[r]["history_length"][0]) == ring.length
            assert rel_err(state[r]["history_keys"][0], ring.keys) <= TOLERANCE
            assert rel_err(state[r]["history_values"][0], ring.values) <= TOLERANCE
    assert rings[0].pos == 6 and rings[0].length == cfg.history_chunks  # it wrapped


def test_refiner_matches_torch(exported, graphs):
    cfg, model, _, _ = exported
    refs = [references(model, n, seed=n)[1] for n in (3, 1, 2)]
    rows = [0, 1, 2]
    cond, feeds = conditioning(model, rows, cfg.chunk_latent_frames, seed=5)
    gen = torch.Generator().manual_seed(1)
    shape = (3, cfg.latent_channels, cfg.chunk_latent_frames, cfg.latent_size, cfg.latent_size)
    x0, noise = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    expected = model.refiner.refine(x0, noise, ReferenceBatch(refs), cond)
    keys, values, lengths = stacked(refs)
    feeds.update({"x0": x0.numpy(), "noise": noise.numpy(), "reference_keys": keys})
    feeds.update({"reference_values": values, "reference_length": lengths})
    assert rel_err(graphs["refiner"].run(feeds)["refined"], expected) <= TOLERANCE


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def test_generator_frames_match_the_torch_backend(exported):
    """Two sessions, batched together and alone, 6 chunks (the 2-slot rings wrap)."""
    cfg, model, _, out = exported
    backends = [
        StreamingGenerator(cfg, model),
        OnnxStreamingGenerator(cfg, model, out, options=ONE_THREAD),
    ]
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    n = cfg.samples_per_chunk
    schedule = [[0, 1], [0], [0, 1], [1], [0, 1], [0, 1]]
    frames = []
    for generator in backends:
        chars = [generator.prepare(images, ROLES), generator.prepare(images[:2], ROLES[:2])]
        states = [
            generator.open(chars[0], prompt="cheerful", seed=3),
            generator.open(chars[1], prompt="sad", seed=4, size=48),
        ]
        done = [0, 0]
        rng = np.random.default_rng(1)
        out_frames = []
        for rows in schedule:
            audio = []
            for r in rows:
                pcm = (rng.standard_normal((2, n)) * 0.2).astype(np.float32)
                audio.append(ChunkAudio(done[r] * n, pcm[0], pcm[1]))
                done[r] += 1
            chunks = generator.step([states[r] for r in rows], audio)
            assert [c.chunk_index for c in chunks] == [a.chunk_index for a in audio]
            out_frames.append([c.frames for c in chunks])
        frames.append(out_frames)
    for torch_chunks, onnx_chunks in zip(*frames):
        for a, b in zip(torch_chunks, onnx_chunks):
            assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
            assert psnr(a, b) >= MIN_PSNR_DB
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 8


def test_generator_refuses_other_weights_and_bad_audio(exported):
    cfg, model, _, out = exported
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        other = LPM(cfg)
    with pytest.raises(ValueError, match="differ"):
        OnnxStreamingGenerator(cfg, other, out, options=ONE_THREAD)
    generator = OnnxStreamingGenerator(cfg, model, out, options=ONE_THREAD)
    images = np.zeros((1, 64, 64, 3), np.uint8)
    state = generator.open(generator.prepare(images, ROLES[:1]))
    short = np.zeros(cfg.samples_per_chunk - 1, np.float32)
    with pytest.raises(ValueError, match="speak"):
        generator.step([state], [ChunkAudio(0, short, short)])
    generator.close(state)
    ok = np.zeros(cfg.samples_per_chunk, np.float32)
    with pytest.raises(ValueError, match="closed"):
        generator.step([state], [ChunkAudio(0, ok, ok)])


def test_decoder_variants_hold_quality(exported):
    """fp16 weights and int8 (calibrated on rendered clips) against the fp32 decoder, on latents of
    held-out rendered clips; the generator runs on the int8 variant."""
    import onnxruntime as ort

    from lpm_npc.onnx.quantize import (
        clip_latents,
        ladder_clips,
        stream_decode,
        write_decoder_variant,
    )

    cfg, model, _, out = exported
    for variant in ("fp16", "int8"):
        write_decoder_variant(out, variant, model=model, calibration_clips=2)
    latents = clip_latents(model, ladder_clips(2, cfg.image_size, 8, held_out=True))
    shapes = [tuple(s.shape[1:]) for s in model.vae.init_decode_cache(1).slots]

    def pixels(file: str) -> np.ndarray:
        session = ort.InferenceSession(str(out / file), providers=["CPUExecutionProvider"])
        video = np.concatenate([v for _, v in stream_decode(session, latents, shapes)], axis=2)
        return np.round((np.clip(video, -1, 1) + 1) * 127.5)

    reference = pixels("decoder.onnx")
    assert psnr(pixels("decoder.fp16.onnx"), reference) >= 55.0  # measured ~69 dB
    assert psnr(pixels("decoder.int8.onnx"), reference) >= 35.0  # measured ~45 dB
    options = OrtOptions(intra_op_threads=1, decoder_variant="int8")
    generator = OnnxStreamingGenerator(cfg, model, out, options=options)
    state = generator.open(generator.prepare(np.zeros((1, 64, 64, 3), np.uint8), ROLES[:1]))
    silence = np.zeros(cfg.samples_per_chunk, np.float32)
    (chunk,) = generator.step([state], [ChunkAudio(0, silence, silence)])
    assert chunk.frames.shape == (cfg.frames_per_chunk, cfg.image_size, cfg.image_size, 3)
