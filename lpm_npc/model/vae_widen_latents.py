"""Warm-start a VAE with more latent channels from one with fewer, drawing the same frames.

`widen_latent_state(vae, state, prefix)` returns `state` (a `VideoVAE` state dict, keys under
`prefix`) grown to `vae.cfg.latent_channels`. Only three things carry the latent width:
- `encoder.out` produces the posterior `[mean (C), logvar (C)]`: the old mean rows stay first and
  the new mean rows are He-normal random (gain 1, as `vae._init_weights` starts them), bias 0; the
  old logvar rows move behind the new mean rows and the new logvar rows start as a fresh VAE's do
  (weights 0, bias `LOGVAR_INIT`);
- `decoder.inp` reads the latents: its new input columns are 0, so the decoder ignores the new
  channels until training moves those columns (their inputs are live, so they get a gradient);
- `latent_mean` / `latent_std`: the new channels get 0 / 1 (the `vae` stage measures them again
  when it finishes, `train.stage_vae.measure_latent_stats`).
So the widened VAE round-trips every video to the same frames as the narrow one (float rounding).
Every DiT and latent dataset reads `latent_channels` latents, so after a widening they are built
again; this module trains nothing and touches nothing outside the VAE.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lpm_npc.model.vae import LOGVAR_INIT, VideoVAE, latent_channels_of


def widen_latent_state(
    vae: VideoVAE, state: dict[str, Tensor], prefix: str = "", seed: int = 0
) -> tuple[dict[str, Tensor], list[str]]:
    """(`state` with its latent width grown to `vae.cfg.latent_channels`, the grown keys).

    Keys outside the three latent-width tensors (and outside `prefix`) are returned as they are;
    an equal width returns `state` unchanged; a narrower target raises."""
    old_c, new_c = latent_channels_of(state, prefix), int(vae.cfg.latent_channels)
    if new_c < old_c:
        raise ValueError(f"latent_channels: cannot shrink {old_c} to {new_c}")
    if new_c == old_c:
        return dict(state), []
    generator = torch.Generator().manual_seed(seed)
    out = dict(state)
    k_w, k_b = f"{prefix}encoder.out.weight", f"{prefix}encoder.out.bias"
    old_w, old_b = state[k_w], state[k_b]
    top, kh, kw = old_w.shape[1:]
    w = torch.zeros((2 * new_c, top, kh, kw), dtype=old_w.dtype)
    b = torch.zeros(2 * new_c, dtype=old_b.dtype)
    w[:old_c], b[:old_c] = old_w[:old_c], old_b[:old_c]
    std = math.sqrt(1.0 / (top * kh * kw))
    w[old_c:new_c] = (torch.randn((new_c - old_c, top, kh, kw), generator=generator) * std).to(w)
    w[new_c : new_c + old_c], b[new_c : new_c + old_c] = old_w[old_c:], old_b[old_c:]
    b[new_c + old_c :] = LOGVAR_INIT
    out[k_w], out[k_b] = w, b
    k_in = f"{prefix}decoder.inp.weight"
    old_in = state[k_in]
    inp = torch.zeros((old_in.shape[0], new_c, *old_in.shape[2:]), dtype=old_in.dtype)
    inp[:, :old_c] = old_in
    out[k_in] = inp
    k_mean, k_std = f"{prefix}latent_mean", f"{prefix}latent_std"
    mean = torch.zeros(new_c, dtype=state[k_mean].dtype)
    sd = torch.ones(new_c, dtype=state[k_std].dtype)
    mean[:old_c], sd[:old_c] = state[k_mean], state[k_std]
    out[k_mean], out[k_std] = mean, sd
    return out, [k_w, k_b, k_in, k_mean, k_std]
