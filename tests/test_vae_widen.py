"""A wider VAE decoder warm-started by `model.vae_widen` decodes exactly what the narrow one did,
and its new channels train; bad widths are refused with the field named."""

import pytest
import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.vae import VideoVAE
from lpm_npc.model.vae_widen import widen_state
from tests.test_vae import _randomised


def _wide(cfg: ModelConfig) -> ModelConfig:
    ch = cfg.vae_channels  # test preset (8, 8, 16, 16): widen H/2 and H/4, with their temporal mix
    return cfg.with_overrides(vae_decoder_channels=(ch[0], 2 * ch[1], ch[2] + 8, ch[3]))


def test_widened_decoder_decodes_the_same_frames_and_its_new_weights_learn() -> None:
    cfg = ModelConfig.from_name("test")
    narrow = _randomised(cfg, seed=5)
    wide = VideoVAE(_wide(cfg)).eval()
    state, grown = widen_state(wide.decoder, narrow.decoder.state_dict(), prefix="")
    assert any("mixes" in key and key.endswith("proj.weight") for key in grown)
    assert any(key.startswith("ups.") for key in grown) and "out.weight" in grown
    wide.decoder.load_state_dict(state)
    wide.encoder.load_state_dict(narrow.encoder.state_dict())
    torch.manual_seed(0)
    z = torch.randn(2, cfg.latent_channels, 3, 4, 4)
    with torch.no_grad():
        before, after = narrow.decode(z), wide.decode(z)
        cache = wide.init_decode_cache(2, latent_hw=(4, 4))
        streamed = torch.cat([wide.decode_step(z[:, :, i : i + 1], cache) for i in range(3)], 2)
    assert (after - before).abs().max().item() <= 1e-5
    assert (streamed - after).abs().max().item() <= 1e-5
    # The new channels are live: the zero columns that read them get a gradient.
    wide.decoder.out.weight.grad = None
    wide.decode(z).square().mean().backward()
    new_columns = wide.decoder.out.weight.grad[:, cfg.vae_channels[1] :]
    assert new_columns.abs().sum().item() > 0


def test_widen_state_leaves_equal_shapes_and_other_keys_alone() -> None:
    cfg = ModelConfig.from_name("test")
    narrow = _randomised(cfg, seed=1)
    state = {f"vae.decoder.{k}": v for k, v in narrow.decoder.state_dict().items()}
    state["vae.encoder.stem.weight"] = narrow.encoder.stem.weight.detach()
    out, grown = widen_state(VideoVAE(cfg).decoder, state, prefix="vae.decoder.")
    assert grown == []
    assert all(out[k] is state[k] for k in state)


def test_bad_decoder_widths_name_the_field() -> None:
    cfg = ModelConfig.from_name("test")
    with pytest.raises(ValueError, match="vae_decoder_channels"):
        VideoVAE(cfg.with_overrides(vae_decoder_channels=(8, 16)))
    with pytest.raises(ValueError, match=r"vae_decoder_channels\[0\]"):
        VideoVAE(cfg.with_overrides(vae_decoder_channels=(9, 16, 16, 16)))
    narrow = _randomised(cfg, seed=2)
    latent_side = VideoVAE(cfg.with_overrides(vae_decoder_channels=(8, 8, 16, 24)))
    with pytest.raises(ValueError, match="latent-side width"):
        widen_state(latent_side.decoder, narrow.decoder.state_dict(), prefix="")
    wide = VideoVAE(_wide(cfg))
    wide_state = wide.decoder.state_dict()
    with pytest.raises(ValueError, match="cannot shrink"):
        widen_state(narrow.decoder, wide_state, prefix="")


def test_a_widened_vae_file_loads_with_its_widths_read_off_the_tensors(tmp_path) -> None:
    from safetensors.torch import save_file

    from lpm_npc.model.vae import decoder_channels, fit_decoder_channels, load_frozen_vae

    cfg = ModelConfig.from_name("test")
    wide = VideoVAE(_wide(cfg)).eval()
    assert decoder_channels(fit_decoder_channels(cfg, wide.state_dict())) == (8, 16, 24, 16)
    narrow_state = VideoVAE(cfg).state_dict()
    assert fit_decoder_channels(cfg, narrow_state) is cfg
    assert fit_decoder_channels(_wide(cfg), narrow_state).vae_decoder_channels is None
    with pytest.raises(ValueError, match="not a VideoVAE state dict"):
        fit_decoder_channels(cfg, {"encoder.stem.weight": torch.zeros(1)})
    # A bare LPM weights file (the default checkpoint's shape of file) loads without the override
    # and decodes exactly what the wide VAE does.
    path = tmp_path / "model.safetensors"
    save_file({f"vae.{k}": v.contiguous() for k, v in wide.state_dict().items()}, str(path))
    loaded = load_frozen_vae(path, cfg)
    z = torch.randn(1, cfg.latent_channels, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), wide.decode(z))


def test_a_warm_start_with_another_decoder_names_the_override() -> None:
    from lpm_npc.train.recipe import check_decoder_fits

    cfg = ModelConfig.from_name("test")
    state = {f"vae.{k}": v for k, v in VideoVAE(_wide(cfg)).state_dict().items()}
    with pytest.raises(ValueError, match=r"vae_decoder_channels=\[8,16,24,16\]"):
        check_decoder_fits(state, cfg, "base")
    check_decoder_fits(state, _wide(cfg), "base")  # fits: no error
    check_decoder_fits(state, cfg, "vae")  # the vae stage widens or loads it itself
