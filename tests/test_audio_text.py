"""Audio encoder (log-mel front end, causality, streaming == full, tracks) and the text encoder."""

import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.audio import (
    AudioCache,
    AudioEncoder,
    AudioFeatureExtractor,
    LogMelFrontEnd,
    Track,
    mel_filterbank,
    samples_per_latent,
)
from lpm_npc.model.text import (
    PAD_ID,
    START_ID,
    PromptEncoder,
    TextEncoder,
    encode_prompt,
    tokenize,
)

TINY = ModelConfig.from_name("tiny")
N = samples_per_latent(TINY)  # 2664


def _encoder(seed: int = 0) -> AudioEncoder:
    torch.manual_seed(seed)
    enc = AudioEncoder(TINY).eval()
    with torch.no_grad():  # non-trivial conv weights so every causal path carries signal
        for conv in enc.convs:
            conv.conv.weight.normal_(0.0, 0.1)
    return enc


def _speechy(seconds_latents: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = seconds_latents * N
    t = torch.arange(n) / 16000.0
    tone = torch.sin(2 * torch.pi * (180 + 60 * torch.sin(2 * torch.pi * 3 * t)) * t)
    return (0.3 * tone + 0.05 * torch.randn(n, generator=g))[None].float()


def test_mel_filterbank_covers_the_spectrum():
    fb = mel_filterbank(40)
    assert fb.shape == (513, 40)
    assert (fb >= 0).all() and fb.max() <= 1.0 + 1e-6
    assert (fb.sum(dim=0) > 0).all(), "every mel filter must catch at least one FFT bin"
    peaks = fb.argmax(dim=0)
    assert (peaks[1:] >= peaks[:-1]).all(), "filters are ordered by frequency"


def test_front_end_is_a_feature_extractor_with_two_frames_per_video_frame():
    front = LogMelFrontEnd(TINY)
    assert isinstance(front, AudioFeatureExtractor)
    assert front.frames_per_latent == 8
    feats = front(torch.zeros(1, 2 * N), None)
    assert feats.shape == (1, 16, TINY.n_mels)


def test_output_shape_and_track_names():
    enc = _encoder()
    pcm = _speechy(3, 0).repeat(2, 1)
    with torch.no_grad():
        speak = enc(pcm, Track.SPEAK)
        assert speak.shape == (2, 3, TINY.n_audio_tokens, TINY.audio_dim)
        torch.testing.assert_close(enc(pcm, "speak"), speak)
        torch.testing.assert_close(enc(pcm, 0), speak)
        listen = enc(pcm, "listen")
        mixed = enc(pcm, torch.tensor([0, 1]))
    assert (speak - listen).abs().max() > 1e-2, "track embeddings must differ"
    torch.testing.assert_close(mixed[0], speak[0])
    torch.testing.assert_close(mixed[1], listen[1])
    with pytest.raises(ValueError, match="track"):
        enc(pcm, "narrator")
    with pytest.raises(ValueError, match="multiple of 2664"):
        enc(pcm[:, :1000], "speak")


def test_streaming_equals_full_pass():
    enc = _encoder(1)
    pcm = torch.cat([_speechy(6, 1), _speechy(6, 2)])
    with torch.no_grad():
        full = enc(pcm, "speak")
        cache = enc.init_cache(2)
        chunks = [1, 2, 1, 2]  # latent frames per step, any split works
        out, start = [], 0
        for k in chunks:
            out.append(enc.step(pcm[:, start : start + k * N], "speak", cache))
            start += k * N
    streamed = torch.cat(out, dim=1)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max().item() <= 1e-5


def test_future_audio_never_changes_earlier_tokens():
    enc = _encoder(2)
    pcm = _speechy(4, 3)
    changed = pcm.clone()
    changed[:, 2 * N + 5 :] = torch.randn_like(changed[:, 2 * N + 5 :])
    with torch.no_grad():
        a, b = enc(pcm, "listen"), enc(changed, "listen")
    diff = (a - b).abs().amax(dim=(0, 2, 3))  # per latent frame
    assert diff[:2].max().item() == 0.0
    assert diff[2].item() > 1e-4 and diff[3].item() > 1e-4


def test_silence_gives_finite_tokens_that_differ_from_speech():
    enc = _encoder(3)
    silence = torch.zeros(1, 3 * N)
    with torch.no_grad():
        quiet = enc(silence, "speak")
        loud = enc(_speechy(3, 4), "speak")
    assert torch.isfinite(quiet).all()
    assert (quiet - loud).abs().max() > 1e-2
    # The past before a stream is silence, so silence is the same in every latent frame.
    torch.testing.assert_close(quiet[:, 0], quiet[:, 1])
    torch.testing.assert_close(quiet[:, 1], quiet[:, 2])


def test_audio_cache_rows_and_errors():
    enc = _encoder(4)
    cache = enc.init_cache(2)
    assert isinstance(cache, AudioCache) and cache.batch == 2
    with pytest.raises(ValueError, match="batch"):
        enc.step(torch.zeros(1, N), "speak", cache)
    one = cache.select([1])
    assert one.batch == 1


def test_tokenizer_ids_are_stable():
    # Fixed ids: a salted hash (Python's hash()) would change them from process to process.
    assert tokenize("Skeptical, arms crossed -- DON'T smile!") == [
        "skeptical",
        "arms",
        "crossed",
        "don't",
        "smile",
    ]
    ids = encode_prompt("Skeptical, arms crossed -- DON'T smile!", TINY)
    assert ids.tolist() == [1, 2593, 345, 2775, 404, 2668] + [0] * 10
    assert encode_prompt("cheerful", ModelConfig.from_name("test")).tolist() == [1, 186] + [0] * 6


def test_prompt_truncation_and_empty_prompt():
    long = " ".join(f"w{i}" for i in range(40))
    ids = encode_prompt(long, TINY)
    assert ids.shape == (TINY.text_max_tokens,) and (ids != PAD_ID).all()
    empty = encode_prompt("", TINY)
    assert empty[0].item() == START_ID and (empty[1:] == PAD_ID).all()


def test_text_encoder_masks_and_shapes():
    torch.manual_seed(0)
    enc = TextEncoder(TINY).eval()
    assert isinstance(enc, PromptEncoder)
    with torch.no_grad():
        emb, mask = enc(["cheerful", "", "skeptical, arms crossed"])
        emb2, _ = enc(["cheerful", "angry", "skeptical, arms crossed"])
        ids = torch.stack(
            [encode_prompt(p, TINY) for p in ["cheerful", "", "skeptical, arms crossed"]]
        )
        emb3, mask3 = enc(ids)
    assert emb.shape == (3, TINY.text_max_tokens, TINY.text_dim)
    assert mask.tolist()[1] == [True] + [False] * (TINY.text_max_tokens - 1)
    assert mask.sum(dim=1).tolist() == [2, 1, 4]
    assert torch.isfinite(emb).all()
    assert emb[~mask].abs().max().item() == 0.0  # padding positions carry nothing
    torch.testing.assert_close(emb[0], emb2[0])  # rows are independent
    assert (emb[1] - emb2[1]).abs().max() > 1e-3  # the word matters
    torch.testing.assert_close(emb, emb3)
    assert torch.equal(mask, mask3)


def test_text_encoder_is_small_for_large_text_dims():
    with torch.device("meta"):
        enc = TextEncoder(ModelConfig.from_name("lpm-17b"))
    assert sum(p.numel() for p in enc.parameters()) < 10_000_000
