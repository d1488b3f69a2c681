"""StreamingGenerator: determinism, batching, the noisy-history commit, flat memory, weights I/O."""

import numpy as np
import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.engine.protocol import ChunkAudio
from lpm_npc.engine.weights import load_lpm, save_lpm
from lpm_npc.model.audio import AudioEncoder
from lpm_npc.model.caches import HistoryRing
from lpm_npc.model.flow import sampling_timesteps
from lpm_npc.model.lpm import LPM
from lpm_npc.model.vae import VideoVAE

CFG = ModelConfig.from_name("test")
ROLES = [("global", ""), ("view", "front"), ("expression", "smile")]


def make_generator(cfg: ModelConfig) -> StreamingGenerator:
    torch.manual_seed(0)
    model = LPM(cfg)
    for dit in (model.backbone, model.refiner):  # let audio matter in a random model
        for block in dit.blocks:
            torch.nn.init.normal_(block.audio_attn.out.weight, std=0.1)
    if cfg.reference_concat:  # the front-latent input starts at zero; make it matter
        with torch.no_grad():
            model.backbone.patch_embed.weight[:, model.backbone.patch_dim :].normal_(0.0, 0.1)
    return StreamingGenerator(cfg, model)


@pytest.fixture(scope="module")
def generator() -> StreamingGenerator:
    return make_generator(CFG)


@pytest.fixture(scope="module")
def concat_generator() -> StreamingGenerator:
    """The image-to-video lever on (`ModelConfig.reference_concat`)."""
    return make_generator(CFG.with_overrides(reference_concat=True))


def character(generator, seed=0, n=3):
    images = np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return generator.prepare(images, ROLES[:n], name=f"c{seed}")


def audio(seed, n):
    return (np.random.default_rng(seed).standard_normal(n) * 0.2).astype(np.float32)


def chunk_audio(k, seed, listen_seed=None):
    """Chunk k of a session's two tracks (seeded noise), at its place on the clock."""
    n = CFG.samples_per_chunk
    speak = audio(1000 * seed + k, n)
    listen = np.zeros(n, np.float32) if listen_seed is None else audio(1000 * listen_seed + k, n)
    return ChunkAudio(k * n, speak, listen)


def run_session(generator, chunks, *, seed=0, prompt="cheerful", char_seed=0):
    state = generator.open(character(generator, char_seed), prompt=prompt, seed=seed)
    out = [generator.step([state], [chunk_audio(k, seed, seed + 100)])[0] for k in range(chunks)]
    return state, out


def test_frames_shape_pts_and_size(generator):
    state = generator.open(character(generator), seed=1, size=40)
    first = generator.step([state], [chunk_audio(0, 0)])[0]
    assert first.frames.shape == (4, 40, 40, 3) and first.frames.dtype == np.uint8
    # pts come from the audio's place on the clock (a skipped chunk leaves a gap, not a shift)
    later = generator.step([state], [chunk_audio(3, 0)])[0]
    assert later.chunk_index == 3 and list(later.pts_samples) == [7992, 8658, 9324, 9990]
    short = ChunkAudio(
        4 * CFG.samples_per_chunk, np.zeros(100, np.float32), np.zeros(100, np.float32)
    )
    with pytest.raises(ValueError, match=r"audio\[0\]\.speak"):
        generator.step([state], [short])
    with pytest.raises(ValueError, match="2 audio chunks for 1 sessions"):
        generator.step([state], [chunk_audio(4, 0)] * 2)
    with pytest.raises(ValueError, match="size"):
        generator.open(character(generator), size=5)
    generator.close(state)
    with pytest.raises(ValueError, match="closed"):
        generator.step([state], [chunk_audio(4, 0)])


def test_deterministic_per_seed(generator):
    _, a = run_session(generator, 3, seed=7)
    _, b = run_session(generator, 3, seed=7)
    _, c = run_session(generator, 3, seed=8)
    for x, y in zip(a, b):
        assert np.array_equal(x.frames, y.frames)
    assert not np.array_equal(a[-1].frames, c[-1].frames)


def test_prompt_and_audio_change_the_output(generator):
    _, base = run_session(generator, 2, seed=1)
    _, other_prompt = run_session(generator, 2, seed=1, prompt="angry arms crossed")
    assert not np.array_equal(base[-1].frames, other_prompt[-1].frames)


@pytest.mark.parametrize("which", ["generator", "concat_generator"])
def test_batched_step_equals_one_by_one(which, request, monkeypatch):
    """Every stage of a step is batched across sessions, and a session computes what it would
    alone: the refined latents, the frames, the committed history and every streaming cache."""
    generator = request.getfixturevalue(which)
    decoded, encoded = [], []
    decode_step, encode_step = VideoVAE.decode_step, AudioEncoder.step

    def spy_decode(vae, latents, cache):
        decoded.append(latents.clone())
        return decode_step(vae, latents, cache)

    def spy_encode(encoder, pcm, track, cache):
        encoded.append(pcm.shape[0])
        return encode_step(encoder, pcm, track, cache)

    monkeypatch.setattr(VideoVAE, "decode_step", spy_decode)
    monkeypatch.setattr(AudioEncoder, "step", spy_encode)

    def make_pair():
        # Different characters (different reference counts), seeds, prompts and ring fill.
        a = generator.open(character(generator, 1, n=3), prompt="cheerful", seed=1)
        b = generator.open(character(generator, 2, n=2), prompt="sad and tired", seed=2)
        for k in range(2):
            generator.step([a], [chunk_audio(k, 1, 2)])
        return a, b

    a, b = make_pair()
    decoded.clear(), encoded.clear()
    batched = generator.step([a, b], [chunk_audio(2, 1, 2), chunk_audio(0, 3, 4)])
    assert (
        encoded == [4] and len(decoded) == 1
    )  # one audio call (2 sessions x 2 tracks), one decode
    batched_latents = decoded[0]
    a2, b2 = make_pair()
    decoded.clear()
    alone = generator.step([a2], [chunk_audio(2, 1, 2)]) + generator.step(
        [b2], [chunk_audio(0, 3, 4)]
    )
    for row in range(2):
        want = decoded[row][0]
        assert ((batched_latents[row] - want).norm() / want.norm()).item() <= 1e-5
        assert np.abs(batched[row].frames.astype(int) - alone[row].frames.astype(int)).max() <= 1
        assert list(batched[row].pts_samples) == list(alone[row].pts_samples)
    for s1, s2 in ((a, a2), (b, b2)):
        diff = (s1.history.keys - s2.history.keys).norm() / s2.history.keys.norm()
        assert diff.item() <= 1e-5
        for name in ("speak_cache", "listen_cache", "decode_cache"):
            for x, y in zip(getattr(s1, name).slots, getattr(s2, name).slots):
                torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_only_the_noisy_history_pass_commits(generator, monkeypatch):
    calls = []
    forward = generator.model.backbone.forward_chunk

    def spy_forward(x_t, t, refs, cond, history=None, *, write_history=False, predict=True):
        calls.append(("pass", round(float(t[0, 0]), 4), write_history, predict))
        return forward(x_t, t, refs, cond, history, write_history=write_history, predict=predict)

    commit = HistoryRing.commit

    def spy_commit(self):
        calls.append(("commit",))
        commit(self)

    monkeypatch.setattr(generator.model.backbone, "forward_chunk", spy_forward)
    monkeypatch.setattr(HistoryRing, "commit", spy_commit)
    state = generator.open(character(generator), seed=0)
    before = state.history.keys.clone()
    generator.step([state], [chunk_audio(0, 0, 1)])
    levels = sampling_timesteps(CFG.backbone_steps, CFG.flow_shift).tolist()
    levels = [round(x, 4) for x in levels[:-1]]
    expected = [("pass", level, False, True) for level in levels]
    # the noisy-history pass only writes the ring: no prediction is made
    expected += [("pass", round(CFG.context_noise, 4), True, False), ("commit",)]
    assert calls == expected
    assert state.history.length == 1 and not torch.equal(state.history.keys, before)


def test_history_pass_kv_are_what_is_committed(generator, monkeypatch):
    """The ring holds exactly the K/V the context-noise pass wrote, not a denoising pass's."""
    written = []
    write = HistoryRing.write

    def spy_write(self, layer, k, v):
        written.append((layer, k.clone()))
        write(self, layer, k, v)

    monkeypatch.setattr(HistoryRing, "write", spy_write)
    state = generator.open(character(generator), seed=0)
    generator.step([state], [chunk_audio(0, 0, 1)])
    assert [layer for layer, _ in written] == list(range(CFG.n_layers))  # one pass wrote
    p = CFG.tokens_per_chunk
    for layer, k in written:
        assert torch.equal(state.history.keys[layer, :, :p], k)


def test_memory_flat_over_many_chunks():
    """2,000 commits: the ring's buffers never move or grow; positions never enter the state."""
    cfg = CFG
    ring = HistoryRing(cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.tokens_per_chunk, 3)
    pointers = (ring.keys.data_ptr(), ring.values.data_ptr(), ring.scratch_keys.data_ptr())
    size = ring.nbytes()
    k = torch.randn(cfg.n_heads, cfg.tokens_per_chunk, cfg.head_dim)
    for i in range(2000):
        for layer in range(cfg.n_layers):
            ring.write(layer, k + i, k - i)
        ring.commit()
    assert (ring.keys.data_ptr(), ring.values.data_ptr(), ring.scratch_keys.data_ptr()) == pointers
    assert ring.nbytes() == size and ring.length == 3 and ring.pos == 2000
    assert sorted(ring.chunks_back(s) for s in range(3)) == [1, 2, 3]
    assert torch.equal(ring.keys[0, :, (1999 % 3) * cfg.tokens_per_chunk][0], (k + 1999)[0, 0])


def test_session_state_does_not_grow(generator):
    state = generator.open(character(generator), seed=0)

    def sizes():
        tensors = [state.history.keys, state.history.values, *state.decode_cache.slots]
        tensors += [*state.speak_cache.slots, *state.listen_cache.slots]
        return [(t.data_ptr(), t.numel()) for t in tensors]

    generator.step([state], [chunk_audio(0, 0, 1)])
    first = sizes()
    for k in range(1, 6):
        generator.step([state], [chunk_audio(k, 0, 1)])
    assert sizes() == first
    assert state.history.length == CFG.history_chunks


def test_weights_round_trip(tmp_path, generator):
    save_lpm(generator.model, tmp_path, preset="test", dtype=torch.float32)
    cfg, model = load_lpm(tmp_path)
    assert cfg == CFG
    for (name, a), b in zip(generator.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_lpm(tmp_path / "missing")
    cfg, _ = load_lpm(tmp_path / "missing", allow_random=True, preset="test")
    assert cfg.name == "test"


def test_random_weights_are_one_constructor_and_seeded():
    """Random weights of a named preset: deterministic per seed, blind to any checkpoint, and the
    global RNG is left alone."""
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny", seed=3)
    b = StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny", seed=3)
    c = StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny", seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.cfg.name == "test-tiny" and a.cfg.image_size == 32
    weights = [next(g.model.backbone.parameters()) for g in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_shipped_checkpoint_loads_unchanged():
    """The embedded default loads with every state-dict key matched, and streams frames."""
    from lpm_npc.engine.weights import checkpoint_exists, default_checkpoint_dir

    if not checkpoint_exists(default_checkpoint_dir()):
        pytest.skip("no embedded checkpoint in this checkout")
    generator = StreamingGenerator.from_checkpoint()  # load_lpm raises on any key mismatch
    assert generator.cfg.name == "tiny"
    images = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    prepared = generator.prepare(images, [("global", "scene"), ("view", "front")], name="x")
    state = generator.open(prepared, seed=0)
    n = generator.cfg.samples_per_chunk
    silence = np.zeros(n, np.float32)
    (out,) = generator.step([state], [ChunkAudio(0, silence, silence)])
    assert out.frames.shape == (4, 128, 128, 3)


def test_prepare_keeps_the_most_useful_references(generator):
    """A sheet larger than max_references keeps the global shot, the views, then expressions."""
    roles = [("expression", "angry"), ("global", "scene"), ("expression", "neutral")]
    roles += [("view", "left"), ("view", "front"), ("expression", "smile")]
    images = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    prepared = generator.prepare(images, roles, name="big")
    assert CFG.max_references == 4
    assert prepared.roles == (
        ("global", "scene"),
        ("expression", "neutral"),
        ("view", "left"),
        ("view", "front"),
    )
    with pytest.raises(ValueError, match="roles"):
        generator.prepare(images, roles[:2])


@pytest.mark.slow  # a real (short) benchmark run: seconds of wall time
def test_bench_generator_reports_ratios(tmp_path):
    from lpm_npc.bench.generator import bench_generator

    result = bench_generator(
        preset="test", checkpoint=str(tmp_path / "none"), seconds=0.5, progress=False
    )
    assert result.checkpoint == "random" and result.chunks >= 2
    assert result.rtf > 0 and result.first_frame_ms > 0 and result.peak_gflops > 0
    assert 0 < result.mfu < 2 and result.flops_per_chunk > result.flops_per_chunk_transformer
