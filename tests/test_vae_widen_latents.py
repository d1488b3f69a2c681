"""A VAE widened to more latent channels by `model.vae_widen_latents` round-trips every video to
the same frames as the narrow one, its new channels train, and the `vae` stage's warm start keeps
only the VAE of a narrower LPM."""

import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.lpm import LPM
from lpm_npc.model.vae import LOGVAR_INIT, VideoVAE, latent_channels_of
from lpm_npc.model.vae_widen_latents import widen_latent_state
from lpm_npc.train.stage_vae import _widen_latents
from tests.test_vae import _randomised


def _widened(cfg: ModelConfig, narrow: VideoVAE, extra: int) -> VideoVAE:
    wide = VideoVAE(cfg.with_overrides(latent_channels=cfg.latent_channels + extra)).eval()
    state, grown = widen_latent_state(wide, narrow.state_dict())
    assert set(grown) == {
        "encoder.out.weight",
        "encoder.out.bias",
        "decoder.inp.weight",
        "latent_mean",
        "latent_std",
    }
    wide.load_state_dict(state)
    return wide


def test_widened_latents_round_trip_to_the_same_frames_and_the_new_channels_learn() -> None:
    cfg = ModelConfig.from_name("test")
    narrow = _randomised(cfg, seed=3)
    with torch.no_grad():
        narrow.set_latent_stats(
            torch.randn(cfg.latent_channels) * 0.3, torch.rand(cfg.latent_channels) + 0.5
        )
    wide = _widened(cfg, narrow, extra=4)
    c = cfg.latent_channels
    torch.manual_seed(0)
    video = torch.rand(2, 3, 8, cfg.image_size, cfg.image_size) * 2 - 1
    with torch.no_grad():
        z_narrow, z_wide = narrow.encode(video), wide.encode(video)
        before, after = narrow.decode(z_narrow), wide.decode(z_wide)
        mean, logvar = wide.encode_dist(video)
        cache = wide.init_decode_cache(2, latent_hw=z_wide.shape[-2:])
        steps = [wide.decode_step(z_wide[:, :, i : i + 1], cache) for i in range(z_wide.shape[2])]
    assert z_wide.shape[1] == 2 * c
    assert torch.allclose(z_wide[:, :c], z_narrow, atol=1e-5)
    assert z_wide[:, c:].abs().sum().item() > 0  # the new channels carry something
    assert torch.allclose(logvar[:, c:], torch.full_like(logvar[:, c:], LOGVAR_INIT))
    assert torch.allclose(logvar[:, :c], narrow.encode_dist(video)[1], atol=1e-5)
    assert (after - before).abs().max().item() <= 1e-5
    assert (torch.cat(steps, 2) - after).abs().max().item() <= 1e-5
    # The decoder's zero columns that read the new channels get a gradient.
    wide.decode(z_wide).square().mean().backward()
    assert wide.decoder.inp.weight.grad[:, c:].abs().sum().item() > 0


def test_an_equal_width_is_unchanged_and_a_narrower_one_is_refused() -> None:
    cfg = ModelConfig.from_name("test")
    vae = _randomised(cfg, seed=1)
    state, grown = widen_latent_state(vae, vae.state_dict())
    assert grown == [] and all(torch.equal(state[k], v) for k, v in vae.state_dict().items())
    wide = _widened(cfg, vae, extra=2)
    with pytest.raises(ValueError, match="latent_channels: cannot shrink 6 to 4"):
        widen_latent_state(vae, wide.state_dict())
    with pytest.raises(KeyError, match="not a VideoVAE state dict"):
        latent_channels_of({"decoder.inp.weight": torch.zeros(1)})


def test_the_vae_stage_warm_start_keeps_only_the_vae_of_a_narrower_lpm() -> None:
    cfg = ModelConfig.from_name("test")
    torch.manual_seed(0)
    narrow = LPM(cfg)
    wide_cfg = cfg.with_overrides(latent_channels=2 * cfg.latent_channels)
    wide = LPM(wide_cfg)
    fresh = {k: v.clone() for k, v in wide.state_dict().items()}
    state = _widen_latents(wide, narrow.state_dict())
    wide.load_state_dict(state)  # strict: every key, every shape
    assert torch.equal(
        state["vae.decoder.blocks.0.conv1.weight"],
        narrow.state_dict()["vae.decoder.blocks.0.conv1.weight"],
    )
    assert torch.equal(state["backbone.patch_embed.weight"], fresh["backbone.patch_embed.weight"])
    same = narrow.state_dict()
    assert _widen_latents(narrow, same) is same  # equal widths: the warm start as it was
