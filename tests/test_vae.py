"""Causal video VAE: shapes, causality, streaming decode == full decode, batch-row independence."""

import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.vae import VideoVAE, reconstruction_loss
from lpm_npc.model.vae_cache import DecodeCache


def _randomised(cfg: ModelConfig, seed: int = 0) -> VideoVAE:
    """A VAE whose zero-initialised branches (temporal mixes, residual convs) are non-zero,
    so that causality and streaming tests exercise every temporal path."""
    torch.manual_seed(seed)
    vae = VideoVAE(cfg).eval()
    with torch.no_grad():
        for p in vae.parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / fan_in**0.5)
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return vae


@pytest.fixture(scope="module")
def test_cfg() -> ModelConfig:
    return ModelConfig.from_name("test")


@pytest.fixture(scope="module")
def vae(test_cfg: ModelConfig) -> VideoVAE:
    return _randomised(test_cfg)


def test_shapes_tiny_preset():
    cfg = ModelConfig.from_name("tiny")
    vae = VideoVAE(cfg).eval()
    video = torch.rand(2, 3, 8, 32, 48) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)
        mean, logvar = vae.encode_dist(video)
        out = vae.decode(z)
        img = vae.encode_image(video[:, :, 0])
    assert z.shape == (2, cfg.latent_channels, 2, 4, 6)
    assert mean.shape == logvar.shape == z.shape
    assert out.shape == video.shape
    assert img.shape == (2, cfg.latent_channels, 4, 6)


def test_encode_image_is_a_static_group(vae: VideoVAE, test_cfg: ModelConfig):
    images = torch.rand(3, 3, test_cfg.image_size, test_cfg.image_size) * 2 - 1
    with torch.no_grad():
        img = vae.encode_image(images)
        group = vae.encode(images[:, :, None].repeat(1, 1, 4, 1, 1))
    assert img.shape == (3, test_cfg.latent_channels, test_cfg.latent_size, test_cfg.latent_size)
    torch.testing.assert_close(img, group[:, :, 0])


def test_encoder_is_causal(vae: VideoVAE):
    torch.manual_seed(1)
    video = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    changed = video.clone()
    changed[:, :, 9] = -changed[:, :, 9]  # frame 9 belongs to latent group 2
    with torch.no_grad():
        a, b = vae.encode(video), vae.encode(changed)
    diff = (a - b).abs().amax(dim=(0, 1, 3, 4))  # per latent frame
    assert diff[:2].max().item() == 0.0
    assert diff[2].item() > 1e-3 and diff[3].item() > 1e-6


def test_decoder_is_causal(vae: VideoVAE, test_cfg: ModelConfig):
    torch.manual_seed(2)
    z = torch.randn(1, test_cfg.latent_channels, 4, 4, 4)
    changed = z.clone()
    changed[:, :, 2] += 1.0
    with torch.no_grad():
        a, b = vae.decode(z), vae.decode(changed)
    diff = (a - b).abs().amax(dim=(0, 1, 3, 4))  # per video frame
    assert diff[:8].max().item() == 0.0
    assert diff[8:12].min().item() > 1e-4  # the changed group
    assert diff[12:].min().item() > 1e-6  # later frames see it through the temporal convs


@pytest.mark.parametrize("preset", ["test", "tiny"])
def test_streaming_decode_equals_full_decode(preset: str):
    cfg = ModelConfig.from_name(preset)
    vae = _randomised(cfg, seed=3)
    torch.manual_seed(3)
    z = torch.randn(2, cfg.latent_channels, 5, 4, 4)
    with torch.no_grad():
        full = vae.decode(z)
        cache = vae.init_decode_cache(2, latent_hw=(4, 4))
        steps = [vae.decode_step(z[:, :, i : i + 1], cache) for i in range(5)]
    streamed = torch.cat(steps, dim=2)
    assert streamed.shape == full.shape == (2, 3, 20, 32, 32)
    assert (streamed - full).abs().max().item() <= 1e-5


def test_decode_cache_rows_are_independent(vae: VideoVAE, test_cfg: ModelConfig):
    torch.manual_seed(4)
    c = test_cfg.latent_channels
    a = torch.randn(1, c, 3, 4, 4)
    b = torch.randn(1, c, 3, 4, 4)
    with torch.no_grad():
        solo_a = vae.decode(a)
        solo_b = vae.decode(b)
        # Stream a alone for one chunk, b alone for one chunk, then merge and continue batched.
        cache_a = vae.init_decode_cache(1, latent_hw=(4, 4))
        cache_b = vae.init_decode_cache(1, latent_hw=(4, 4))
        first_a = vae.decode_step(a[:, :, :1], cache_a)
        first_b = vae.decode_step(b[:, :, :1], cache_b)
        merged = DecodeCache.merge([cache_b, cache_a])  # rows: b, a
        rest = vae.decode_step(torch.cat([b[:, :, 1:], a[:, :, 1:]]), merged)
    torch.testing.assert_close(torch.cat([first_a, rest[1:]], dim=2), solo_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([first_b, rest[:1]], dim=2), solo_b, atol=1e-5, rtol=0)
    # select / write_rows round trip and reset_rows
    picked = merged.select([1])
    merged.reset_rows([1])
    assert all(s[1].abs().max().item() == 0.0 for s in merged.slots)
    assert any(s[0].abs().max().item() > 0.0 for s in merged.slots)
    merged.write_rows([1], picked)
    for slot, src in zip(merged.slots, picked.slots):
        torch.testing.assert_close(slot[1:], src)


def test_reset_restarts_the_stream(vae: VideoVAE, test_cfg: ModelConfig):
    z = torch.randn(1, test_cfg.latent_channels, 1, 4, 4)
    with torch.no_grad():
        cache = vae.init_decode_cache(1, latent_hw=(4, 4))
        first = vae.decode_step(z, cache)
        second = vae.decode_step(z, cache)
        cache.reset()
        again = vae.decode_step(z, cache)
    assert (first - second).abs().max().item() > 1e-6  # the past matters
    torch.testing.assert_close(first, again)


def test_latent_stats_normalise_encode_and_decode(test_cfg: ModelConfig):
    vae = _randomised(test_cfg, seed=5)
    video = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(video)
        decoded = vae.decode(raw)
        mean = torch.linspace(-1, 1, test_cfg.latent_channels)
        std = torch.linspace(0.5, 2, test_cfg.latent_channels)
        vae.set_latent_stats(mean, std)
        z = vae.encode(video)
        torch.testing.assert_close(z, (raw - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1))
        torch.testing.assert_close(vae.decode(z), decoded, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="std"):
        vae.set_latent_stats(mean, -std)


def test_reconstruction_loss_and_training_pass(test_cfg: ModelConfig):
    vae = VideoVAE(test_cfg)
    video = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    out = vae(video, generator=torch.Generator().manual_seed(0))
    loss = reconstruction_loss(video, out.recon, out.mean, out.logvar)
    loss.total.backward()
    grads = [p.grad for p in vae.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert loss.l1.item() > 0 and loss.edge.item() > 0 and loss.kl.item() >= 0
    zero = torch.zeros_like(out.mean)
    perfect = reconstruction_loss(video, video, zero, zero)
    assert perfect.total.item() == 0.0


def test_bad_inputs_name_the_field(vae: VideoVAE, test_cfg: ModelConfig):
    with pytest.raises(ValueError, match="T must be a positive multiple of 4"):
        vae.encode(torch.zeros(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        vae.encode(torch.zeros(1, 3, 4, 30, 32))
    with pytest.raises(ValueError, match="latents"):
        vae.decode(torch.zeros(1, test_cfg.latent_channels + 1, 1, 4, 4))
    cache = vae.init_decode_cache(1, latent_hw=(4, 4))
    with pytest.raises(ValueError, match="cache"):
        vae.decode_step(torch.zeros(2, test_cfg.latent_channels, 1, 4, 4), cache)
