"""Warm-start a wider VAE decoder from a narrower one, drawing exactly the same frames.

`widen_state(module, state, prefix)` returns `state` with every tensor under `prefix` whose shape
differs from `module`'s grown to the module's shape (`ModelConfig.vae_decoder_channels` widens
decoder levels; nothing may shrink). The old weights fill the leading slices; of the new slices,
- weights that *produce* a new channel (new output rows) are He-normal random, their biases 0;
- weights that *consume* a new channel (new input columns of old outputs) are 0.
So every new channel is computed but read by nothing: the widened decoder decodes the same frames
as the narrow one (to float rounding), and training moves the zero columns first because their
inputs are live. Layouts: Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw), Linear
(out, in), a `CausalTemporalConv` Linear's input being `kernel` taps of `channels_in` side by side.

This module trains nothing and does not touch the encoder, latent statistics or any DiT.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lpm_npc.model.vae import CausalTemporalConv


def _dims(module: nn.Module) -> tuple[int, int]:
    """(output dim, input dim) of a module's weight."""
    if isinstance(module, nn.ConvTranspose2d):
        return 1, 0
    if isinstance(module, nn.Conv2d | nn.Linear):
        return 0, 1
    raise TypeError(f"cannot widen a {type(module).__name__}")


def _grow(
    old: Tensor, shape: torch.Size, out_dim: int | None, fan_in: int, generator: torch.Generator
) -> Tensor:
    """`old` in the leading slice of a tensor of `shape`; new output rows He-normal (or 0 for a
    bias: out_dim None), every other new entry 0."""
    if any(o > n for o, n in zip(old.shape, shape, strict=True)):
        raise ValueError(f"cannot shrink {tuple(old.shape)} to {tuple(shape)}")
    new = torch.zeros(shape, dtype=old.dtype)
    if out_dim is not None and shape[out_dim] > old.shape[out_dim]:
        rows = [slice(None)] * len(shape)
        rows[out_dim] = slice(old.shape[out_dim], None)
        block = new[tuple(rows)]
        std = math.sqrt(2.0 / max(1, fan_in))
        new[tuple(rows)] = torch.randn(block.shape, generator=generator).to(old.dtype) * std
    new[tuple(slice(0, n) for n in old.shape)] = old
    return new


def _taps_to_channels(weight: Tensor, kernel: int) -> Tensor:
    """(out, kernel * c_in) -> (out, kernel, c_in)."""
    return weight.reshape(weight.shape[0], kernel, -1)


def widen_state(
    module: nn.Module, state: dict[str, Tensor], prefix: str, seed: int = 0
) -> tuple[dict[str, Tensor], list[str]]:
    """(`state` with the tensors under `prefix` grown to `module`'s shapes, the grown keys).

    `module` is the (wider) module the keys under `prefix` belong to, e.g. `lpm.vae.decoder` with
    prefix "vae.decoder.". Tensors of equal shape and keys outside `prefix` are returned as they
    are; a key of `module` missing from `state` raises (widening adds no layers)."""
    generator = torch.Generator().manual_seed(seed)
    out = dict(state)
    grown: list[str] = []
    for name, sub in module.named_modules():
        params = dict(sub.named_parameters(recurse=False))
        if "weight" not in params:
            continue
        key = f"{prefix}{name}." if name else prefix
        weight_key, bias_key = key + "weight", key + "bias"
        if weight_key not in state:
            raise KeyError(f"{weight_key} is not in the state to widen")
        old_w, new_shape = state[weight_key], params["weight"].shape
        if old_w.shape == new_shape:
            continue
        if name == "unfold":  # its outputs are `temporal_stride` frames' channels side by side
            raise ValueError(
                f"{weight_key}: the latent-side width cannot be widened (keep "
                "vae_decoder_channels[-1] = vae_channels[-1])"
            )
        out_dim, in_dim = _dims(sub)
        owner = _temporal_owner(module, name)
        if owner is not None and isinstance(sub, nn.Linear):
            kernel = owner.kernel
            old3 = _taps_to_channels(old_w, kernel)
            new3 = torch.Size((new_shape[0], kernel, new_shape[1] // kernel))
            fan_in = new_shape[1]
            out[weight_key] = _grow(old3, new3, 0, fan_in, generator).reshape(new_shape)
        else:
            fan_in = int(new_shape[in_dim]) * math.prod(new_shape[2:])
            out[weight_key] = _grow(old_w, new_shape, out_dim, fan_in, generator)
        grown.append(weight_key)
        if "bias" in params and bias_key in state:
            out[bias_key] = _grow(state[bias_key], params["bias"].shape, None, 1, generator)
            grown.append(bias_key)
    return out, grown


def _temporal_owner(module: nn.Module, name: str) -> CausalTemporalConv | None:
    """The CausalTemporalConv whose projection `name` is (None otherwise)."""
    if not name.endswith(".proj"):
        return None
    parent = module.get_submodule(name.rsplit(".", 1)[0])
    return parent if isinstance(parent, CausalTemporalConv) else None
