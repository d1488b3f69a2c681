"""StreamingGenerator: determinism, batching, the noisy-history commit, flat memory, weights I/O."""

import numpy as np
import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.engine.weights import load_lpm, save_lpm
from lpm_npc.model.caches import HistoryRing
from lpm_npc.model.lpm import LPM

CFG = ModelConfig.from_name("test")
ROLES = [("global", ""), ("view", "front"), ("expression", "smile")]


@pytest.fixture(scope="module")
def generator() -> StreamingGenerator:
    torch.manual_seed(0)
    model = LPM(CFG)
    for dit in (model.backbone, model.refiner):  # let audio matter in a random model
        for block in dit.blocks:
            torch.nn.init.normal_(block.audio_attn.out.weight, std=0.1)
    return StreamingGenerator(CFG, model)


def character(generator, seed=0, n=3):
    images = np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return generator.prepare_images(images, ROLES[:n], name=f"c{seed}")


def audio(seed, n):
    return (np.random.default_rng(seed).standard_normal(n) * 0.2).astype(np.float32)


def run_session(generator, chunks, *, seed=0, prompt="cheerful", char_seed=0):
    state = generator.open(character(generator, char_seed), prompt=prompt, seed=seed)
    n = CFG.samples_per_chunk
    generator.feed(state, audio(seed, n * chunks), audio(seed + 100, n * chunks))
    return state, [generator.step([state])[0] for _ in range(chunks)]


def test_frames_shape_pts_and_size(generator):
    state = generator.open(character(generator), seed=1, size=40)
    generator.feed(state, audio(0, 3000), None)
    assert generator.chunks_due(state) == 0  # listen got nothing: not due until padded
    with pytest.raises(ValueError, match="pad=True"):
        generator.step([state])
    first, second = generator.step([state], pad=True)[0], generator.step([state], pad=True)[0]
    assert first.frames.shape == (4, 40, 40, 3) and first.frames.dtype == np.uint8
    assert second.chunk_index == 1
    assert list(second.pts_samples) == [2664, 3330, 3996, 4662]
    with pytest.raises(ValueError, match="size"):
        generator.open(character(generator), size=5)


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


def test_batched_step_equals_one_by_one(generator, monkeypatch):
    latents = []
    run = generator._run
    monkeypatch.setattr(generator, "_run", lambda batch: latents.append(run(batch)) or latents[-1])

    def make_pair():
        # Different characters (different reference counts), seeds, prompts and ring fill.
        a = generator.open(character(generator, 1, n=3), prompt="cheerful", seed=1)
        b = generator.open(character(generator, 2, n=2), prompt="sad and tired", seed=2)
        n = CFG.samples_per_chunk
        generator.feed(a, audio(1, 4 * n), audio(2, 4 * n))
        generator.feed(b, audio(3, 4 * n), audio(4, 4 * n))
        for _ in range(2):
            generator.step([a])
        return a, b

    a, b = make_pair()
    latents.clear()
    batched = generator.step([a, b])
    batched_latents = latents[0]
    a2, b2 = make_pair()
    latents.clear()
    alone = generator.step([a2]) + generator.step([b2])
    for row in range(2):
        want = latents[row][0]
        assert ((batched_latents[row] - want).norm() / want.norm()).item() <= 1e-5
        assert np.abs(batched[row].frames.astype(int) - alone[row].frames.astype(int)).max() <= 1
    for s1, s2 in ((a, a2), (b, b2)):
        diff = (s1.history.keys - s2.history.keys).norm() / s2.history.keys.norm()
        assert diff.item() <= 1e-5


def test_only_the_noisy_history_pass_commits(generator, monkeypatch):
    calls = []
    forward = generator.model.backbone.forward_chunk

    def spy_forward(x_t, t, refs, cond, history=None, *, write_history=False):
        calls.append(("pass", round(float(t[0, 0]), 4), write_history))
        return forward(x_t, t, refs, cond, history, write_history=write_history)

    commit = HistoryRing.commit

    def spy_commit(self):
        calls.append(("commit",))
        commit(self)

    monkeypatch.setattr(generator.model.backbone, "forward_chunk", spy_forward)
    monkeypatch.setattr(HistoryRing, "commit", spy_commit)
    state = generator.open(character(generator), seed=0)
    before = state.history.keys.clone()
    generator.feed(state, audio(0, CFG.samples_per_chunk), audio(1, CFG.samples_per_chunk))
    generator.step([state])
    levels = [round(x, 4) for x in generator.levels[:-1]]
    expected = [("pass", level, False) for level in levels]
    expected += [("pass", round(CFG.context_noise, 4), True), ("commit",)]
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
    generator.feed(state, audio(0, CFG.samples_per_chunk), audio(1, CFG.samples_per_chunk))
    generator.step([state])
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
    n = CFG.samples_per_chunk

    def sizes():
        tensors = [state.history.keys, state.history.values, *state.decode_cache.slots]
        tensors += [*state.speak_cache.slots, *state.listen_cache.slots]
        return [(t.data_ptr(), t.numel()) for t in tensors]

    generator.feed(state, audio(0, n), audio(1, n))
    generator.step([state])
    first = sizes()
    for _ in range(5):
        generator.feed(state, audio(0, n), audio(1, n))
        generator.step([state])
    assert sizes() == first
    assert state.speak.available == 0 and state.history.length == CFG.history_chunks


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


@pytest.mark.slow  # a real (short) benchmark run: seconds of wall time
def test_bench_generator_reports_ratios(tmp_path):
    from lpm_npc.bench.generator import bench_generator

    result = bench_generator(
        preset="test", checkpoint=str(tmp_path / "none"), seconds=0.5, progress=False
    )
    assert result.checkpoint == "random" and result.chunks >= 2
    assert result.rtf > 0 and result.first_frame_ms > 0 and result.peak_gflops > 0
    assert 0 < result.mfu < 2 and result.flops_per_chunk > result.flops_per_chunk_transformer
