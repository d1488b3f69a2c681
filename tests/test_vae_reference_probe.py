"""scripts/vae_reference_probe.py: its reference branch starts as a no-op (step 0 of the probe draws
the warm start's frames) and, once trained, conditions each decoded row on its own front view."""

import importlib.util
from pathlib import Path

import torch

from lpm_npc.config import ModelConfig
from lpm_npc.model.vae import decoder_channels
from tests.test_vae import _randomised

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "vae_reference_probe.py"
_SPEC = importlib.util.spec_from_file_location("vae_reference_probe", _PATH)
probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(probe)


def _hooked(cfg: ModelConfig):
    vae = _randomised(cfg, seed=3)
    n_down = len(vae.decoder.blocks)
    widths = tuple(decoder_channels(cfg)[n_down - i] for i in range(3))
    branch = probe.ReferenceBranch(widths, cfg.latent_size)
    for level in range(3):
        vae.decoder.blocks[level].register_forward_hook(branch.hook(level))
    return vae, branch


def test_reference_branch_starts_as_a_no_op_then_conditions_each_row_on_its_own_front() -> None:
    cfg = ModelConfig.from_name("test")
    vae, branch = _hooked(cfg)
    torch.manual_seed(0)
    z = torch.randn(2, cfg.latent_channels, 2, cfg.latent_size, cfg.latent_size)
    fronts = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    with torch.no_grad():
        branch.set_reference(None)
        plain = vae.decode(z)
        branch.set_reference(fronts)
        assert (vae.decode(z) - plain).abs().max().item() <= 1e-6  # zero-initialised outputs
        for layer in (branch.o, *branch.fuse_out):
            layer.weight.normal_(0, 0.2)
        conditioned = vae.decode(z)
        other = fronts.clone()
        other[1] = -other[1]
        branch.set_reference(other)
        changed = vae.decode(z)
    assert (conditioned - plain).abs().max().item() > 1e-3
    assert (changed[0] - conditioned[0]).abs().max().item() <= 1e-6  # row 0 kept its front
    assert (changed[1] - conditioned[1]).abs().max().item() > 1e-3
