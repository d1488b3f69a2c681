"""Causal video VAE: spatial stride 8, temporal stride 4, streaming decode through an explicit cache.

Contract:
- `VideoVAE.encode(video (B,3,T,H,W) in [-1,1]) -> latents (B,C,T//4,H//8,W//8)`: the posterior mean,
  normalised by the per-channel latent statistics (`set_latent_stats`; identity until set).
  `encode_dist` gives the raw `(mean, logvar)` for KL training; `forward` is the training pass.
- `decode(latents (B,C,Tl,h,w)) -> video (B,3,4*Tl,H,W)`, unclamped (callers clamp to [-1,1] when
  they make pixels; training wants the gradient outside that range).
- Temporal grouping: latent frame g is exactly video frames 4g..4g+3. We do NOT use the Wan-family
  "first frame alone" layout: every latent frame is a whole group, so every streaming chunk has the
  same shape and the decoder needs no special first step.
- Causality: every temporal convolution sees only the current and past frames (left zero padding:
  the time before frame 0 is all-zero input). Changing video frame k never changes the latents of
  groups before k's group; changing latent frame g never changes decoded frames before 4g.
- Streaming: `init_decode_cache(batch)` + `decode_step(latents, cache)` decodes chunk by chunk and
  equals `decode` of the whole clip (up to float rounding). Rows of the batch are independent
  streams (see `vae_cache.py` for `select` / `merge` / `write_rows` / `reset_rows`).
- Reference images: `encode_image(images (B,3,H,W))` encodes each image as a *static group* (the image
  repeated for 4 frames) from an empty causal state, i.e. exactly what `encode` gives for the first
  latent frame of a clip that holds still: references share the latent distribution of video.

Speed layout (the decoder runs once per streaming chunk on a 2-core CPU): most capacity sits at the
latent side (16x16 for tiny) and at latent frame rate (two residual blocks on one frame per
group); time is expanded (1 latent frame -> 4 video frames) at the latent side; each higher level
has one residual block (plus a cheap causal temporal mix on the two lowest levels). No decoder conv
runs at full resolution: the last level (H/2) emits 3*2*2 channels that are pixel-shuffled into
RGB (sub-pixel convolution), so `vae_channels[0]` is only the encoder's full-resolution stem
width. No normalisation layers (residual branches start at zero instead), Hardswish activations
(cheap on CPU), every tensor channels-last (the fast layout of the CPU conv kernels). Keep the VAE
in fp32 on CPUs without AMX: bf16 convolutions measured ~8x slower there.

Training notes: weights are He-initialised and the posterior log-variance starts at LOGVAR_INIT so
the decoder sees the latent mean from step one; use an LR warm-up (without one, lr 1e-3 collapsed
the decoder to a flat image in the first steps).

This module does not train (see `lpm_npc.train`), clamp or quantise pixels, or know about sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.model.vae_cache import DecodeCache

_CL = torch.channels_last
LATENT_KERNEL = 2  # causal temporal kernel at latent frame rate (this group and the previous one)
FRAME_KERNEL = 3  # causal temporal kernel at video frame rate (this frame and two before)
LATENT_BLOCKS = 2  # residual blocks at latent resolution and latent frame rate
FRAME_MIX_LEVELS = 2  # lowest-resolution video-rate levels that get a causal temporal mix
LOGVAR_RANGE = (-30.0, 20.0)  # clamp of the posterior log-variance (keeps exp() finite)
LOGVAR_INIT = -6.0  # initial posterior log-variance (std 0.05): the decoder sees the mean at first


def _act(x: Tensor) -> Tensor:
    # Hardswish, not SiLU: same shape, ~5x cheaper per element on CPU (SiLU was a tenth of the
    # decoder's time at 64x64 x 4 frames), and in a 200-step overfit of rendered clips it trained
    # as well as SiLU (26.0 vs 25.3 dB) and better than ReLU (24.0 dB).
    return F.hardswish(x)


def _act_(x: Tensor) -> Tensor:
    """`_act` of a tensor nothing else reads again: in place unless a graph needs the input (the
    decoder's activations are megabytes at 128 px; not allocating them again is measurable)."""
    return F.hardswish(x, inplace=not x.requires_grad)


class CausalTemporalConv(nn.Module):
    """Kernel-k temporal conv (1x1 spatially) that reads only the current and past frames.

    Input and output are per-frame tensors `(B*T, C, H, W)` (channels-last). With `states` given,
    the last k-1 input frames of each row are read from and written back to `states[self.slot]`
    (`(B, k-1, H, W, C)`); without, the past is zeros.
    """

    def __init__(self, channels_in: int, channels_out: int, kernel: int, slot: int) -> None:
        super().__init__()
        if kernel < 2:
            raise ValueError(f"kernel: a temporal conv needs kernel >= 2, got {kernel}")
        self.kernel = kernel
        self.slot = slot  # index of this conv's state in a CausalConvCache
        self.channels_in = channels_in
        self.proj = nn.Linear(kernel * channels_in, channels_out)

    def state_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        return (self.kernel - 1, height, width, self.channels_in)

    def forward(self, x: Tensor, frames: int, states: list[Tensor] | None) -> Tensor:
        n, c, h, w = x.shape
        b = n // frames
        xs = x.permute(0, 2, 3, 1).reshape(b, frames, h, w, c)  # (B, T, H, W, C)
        if states is None:
            past = xs.new_zeros(b, self.kernel - 1, h, w, c)
        else:
            past = states[self.slot]
        seq = torch.cat([past, xs], dim=1)  # (B, T+k-1, H, W, C)
        # taps[:, t] = [seq[:, t], ..., seq[:, t+k-1]] along channels: one copy of a window view
        # (concatenating k strided slices was several times slower at batch > 1)
        taps = seq.unfold(1, self.kernel, 1).movedim(-1, -2)  # (B, T, H, W, k, C) view
        taps = taps.reshape(b, frames, h, w, self.kernel * c)
        if states is not None:
            states[self.slot].copy_(seq[:, frames:])
        y = self.proj(taps)  # (B, T, H, W, Cout)
        return y.reshape(n, h, w, -1).permute(0, 3, 1, 2)  # channels-last (B*T, Cout, H, W)


class TemporalMix(nn.Module):
    """Residual causal temporal mixing: x + tconv(act(x)); starts as the identity."""

    def __init__(self, channels: int, kernel: int, slot: int, scale: int) -> None:
        super().__init__()
        self.conv = CausalTemporalConv(channels, channels, kernel, slot)
        self.scale = scale  # this level's side / latent side (to size its cache slot)
        nn.init.zeros_(self.conv.proj.weight)
        nn.init.zeros_(self.conv.proj.bias)

    def forward(self, x: Tensor, frames: int, states: list[Tensor] | None) -> Tensor:
        return self.conv(_act(x), frames, states).add_(x)  # the same sum, no new tensor


class ResBlock(nn.Module):
    """Per-frame residual block of two 3x3 convs; the second starts at zero (no norm layers)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(_act_(self.conv1(_act(x)))).add_(x)  # the same sum, no new tensor


def _levels(cfg: ModelConfig) -> int:
    n_down = int(round(math.log2(cfg.spatial_stride)))
    if 2**n_down != cfg.spatial_stride:
        raise ValueError(f"spatial_stride: must be a power of two, got {cfg.spatial_stride}")
    if len(cfg.vae_channels) != n_down + 1:
        raise ValueError(
            f"vae_channels: need {n_down + 1} widths (full resolution down to latent) for "
            f"spatial_stride={cfg.spatial_stride}, got {cfg.vae_channels}"
        )
    return n_down


def decoder_channels(cfg: ModelConfig) -> tuple[int, ...]:
    """The decoder's widths per level (full resolution first): `vae_decoder_channels`, validated,
    or the encoder's `vae_channels`."""
    dec = cfg.vae_decoder_channels
    if dec is None:
        return tuple(cfg.vae_channels)
    dec = tuple(int(c) for c in dec)
    if len(dec) != len(cfg.vae_channels):
        raise ValueError(
            f"vae_decoder_channels: need {len(cfg.vae_channels)} widths like vae_channels "
            f"{tuple(cfg.vae_channels)}, got {dec}"
        )
    if dec[0] != cfg.vae_channels[0]:
        raise ValueError(
            f"vae_decoder_channels[0] must equal vae_channels[0] = {cfg.vae_channels[0]} (the "
            f"decoder has no full-resolution conv), got {dec[0]}"
        )
    if min(dec) < 1:
        raise ValueError(f"vae_decoder_channels: every width must be >= 1, got {dec}")
    return dec


def fit_decoder_channels(cfg: ModelConfig, vae_state: dict[str, Tensor]) -> ModelConfig:
    """`cfg` with `vae_decoder_channels` read off a `VideoVAE` state dict (keys without the "vae."
    prefix), so a bare weights file whose decoder was widened loads without naming its widths.

    The decoder's ResBlock `blocks.i` runs at level n_down - i; the full-resolution entry is the
    encoder's (`decoder_channels`). Returns `cfg` itself when the widths already match, and raises
    when the state has no decoder blocks (not a VAE state dict)."""
    n_down = _levels(cfg)
    keys = [f"decoder.blocks.{i}.conv1.weight" for i in range(n_down)]
    missing = [k for k in keys if k not in vae_state]
    if missing:
        raise ValueError(f"not a VideoVAE state dict: no {missing[0]}")
    widths = (int(cfg.vae_channels[0]),) + tuple(
        int(vae_state[keys[n_down - level]].shape[0]) for level in range(1, n_down + 1)
    )
    if widths == decoder_channels(cfg):
        return cfg
    return cfg.with_overrides(
        vae_decoder_channels=None if widths == tuple(cfg.vae_channels) else widths
    )


def latent_channels_of(state: dict[str, Tensor], prefix: str = "") -> int:
    """The latent width of a `VideoVAE` state dict (its `latent_mean`)."""
    key = f"{prefix}latent_mean"
    if key not in state:
        raise KeyError(f"{key} is not in the state: not a VideoVAE state dict")
    return int(state[key].shape[0])


def _frame_widths(ch: tuple[int, ...]) -> list[int]:
    """Per-frame (video-rate) width at each level, full resolution first, latent side last.

    Measured trade-off (tiny, 200-step overfit of rendered clips / decode FLOPs): the full width
    ch[-1] at the latent side gives 26.0 dB at 1.31 GMAC per chunk; ch[-2] there gives 24.3 dB
    at 1.03 GMAC (~20% faster decode). Reconstruction bounds everything downstream, so we keep
    the full width.
    """
    return list(ch)


class _Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.vae_channels
        n_down = _levels(cfg)
        self.stride_t = cfg.temporal_stride
        vw = _frame_widths(ch)
        self.stem = nn.Conv2d(3, vw[0], 3, padding=1)
        self.downs = nn.ModuleList(nn.Conv2d(vw[i], vw[i + 1], 2, stride=2) for i in range(n_down))
        # Temporal mixes sit on the lowest FRAME_MIX_LEVELS levels only (cheap, small sides).
        self.first_mix = max(0, n_down - FRAME_MIX_LEVELS)
        self.mixes = nn.ModuleList(
            TemporalMix(
                vw[i + 1], FRAME_KERNEL, slot=i - self.first_mix, scale=2 ** (n_down - 1 - i)
            )
            for i in range(self.first_mix, n_down)
        )
        self.blocks = nn.ModuleList(ResBlock(vw[i + 1]) for i in range(n_down))
        top = ch[-1]
        # A group of frames -> one latent frame (the group's frames side by side in channels).
        self.fold = nn.Conv2d(self.stride_t * vw[-1], top, 1)
        self.latent_mix = TemporalMix(top, LATENT_KERNEL, slot=len(self.mixes), scale=1)
        self.latent_blocks = nn.ModuleList(ResBlock(top) for _ in range(LATENT_BLOCKS))
        self.out = nn.Conv2d(top, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, frames_x: Tensor, frames: int) -> Tensor:
        """(B*T, 3, H, W) channels-last -> (B*Tl, 2C, h, w)."""
        x = self.stem(frames_x)
        for i, (down, block) in enumerate(zip(self.downs, self.blocks)):
            x = down(_act(x))
            if i >= self.first_mix:
                x = self.mixes[i - self.first_mix](x, frames, None)
            x = block(x)
        n, c, h, w = x.shape
        b, tl = n // frames, frames // self.stride_t
        x = x.permute(0, 2, 3, 1).reshape(b, tl, self.stride_t, h, w, c)
        x = x.permute(0, 1, 3, 4, 2, 5).reshape(b * tl, h, w, self.stride_t * c)
        x = self.fold(x.permute(0, 3, 1, 2))
        x = self.latent_mix(x, tl, None)
        for block in self.latent_blocks:
            x = block(x)
        return self.out(_act(x))


class _Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = decoder_channels(cfg)
        n_down = _levels(cfg)
        self.stride_t = cfg.temporal_stride
        top = ch[-1]
        self.inp = nn.Conv2d(cfg.latent_channels, top, 3, padding=1)
        self.latent_mix = TemporalMix(top, LATENT_KERNEL, slot=0, scale=1)
        self.latent_blocks = nn.ModuleList(ResBlock(top) for _ in range(LATENT_BLOCKS))
        vw = _frame_widths(ch)
        # One latent frame -> a group of frames (their features side by side in channels).
        self.unfold = nn.Conv2d(top, self.stride_t * vw[-1], 1)
        # Video-rate level i (0 = latent side) runs at side latent * 2**i with width
        # vw[n_down - i]; levels 1..n_down-1 are reached by 2x transposed convs. Full resolution
        # is emitted by a sub-pixel conv (3*4 channels + pixel shuffle) from the last level.
        n_mix = min(FRAME_MIX_LEVELS, n_down)
        self.mixes = nn.ModuleList(
            TemporalMix(vw[n_down - i], FRAME_KERNEL, slot=1 + i, scale=2**i) for i in range(n_mix)
        )
        self.blocks = nn.ModuleList(ResBlock(vw[n_down - i]) for i in range(n_down))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(vw[n_down - i], vw[n_down - i - 1], 2, stride=2)
            for i in range(n_down - 1)
        )
        self.out = nn.Conv2d(vw[1], 3 * 4, 3, padding=1)

    def cache_shapes(self, latent_h: int, latent_w: int) -> list[tuple[int, int, int, int]]:
        mixes = [self.latent_mix, *self.mixes]
        return [m.conv.state_shape(latent_h * m.scale, latent_w * m.scale) for m in mixes]

    def forward(self, z: Tensor, latent_frames: int, states: list[Tensor] | None) -> Tensor:
        """(B*Tl, C, h, w) channels-last -> (B*T, 3, H, W)."""
        x = self.inp(z)
        x = self.latent_mix(x, latent_frames, states)
        for block in self.latent_blocks:
            x = block(x)
        x = self.unfold(_act_(x))
        n, _, h, w = x.shape
        s = self.stride_t
        x = x.permute(0, 2, 3, 1).reshape(n, h, w, s, -1).permute(0, 3, 1, 2, 4)
        x = x.reshape(n * s, h, w, -1).permute(0, 3, 1, 2)  # (B*T, C, h, w) channels-last
        frames = latent_frames * s
        for i, block in enumerate(self.blocks):
            if i < len(self.mixes):
                x = self.mixes[i](x, frames, states)
            x = block(x)
            if i < len(self.ups):
                x = self.ups[i](x)
        return self.out(_act_(x))  # (B*T, 3*4, H/2, W/2): sub-pixel output, see _decode_raw


def _init_weights(net: nn.Module, out: nn.Conv2d, logvar_channels: int) -> None:
    """He-normal init so activations keep their scale through the activation chain (PyTorch's default
    shrinks them ~1.7x per layer: the latents started 50x smaller than the posterior noise and
    nothing trained). Residual branches that start at zero stay zero; `out` gets gain 1, and its
    last `logvar_channels` outputs start at log-variance LOGVAR_INIT."""
    zero_init = {id(m.conv2) for m in net.modules() if isinstance(m, ResBlock)}
    for m in net.modules():
        if id(m) in zero_init or not isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            continue
        if isinstance(m, nn.ConvTranspose2d):
            fan_in = m.in_channels  # kernel 2, stride 2: each output pixel sees one input pixel
        else:
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        gain = 1.0 if m is out else 2.0
        with torch.no_grad():
            m.weight.normal_(0.0, math.sqrt(gain / fan_in))
            m.bias.zero_()
    if logvar_channels:
        with torch.no_grad():
            out.weight[-logvar_channels:].zero_()
            out.bias[-logvar_channels:].fill_(LOGVAR_INIT)


@dataclass(frozen=True)
class VAEOutput:
    """One training pass: reconstruction and the raw posterior it came from."""

    recon: Tensor  # (B, 3, T, H, W)
    mean: Tensor  # (B, C, T//4, h, w), raw (un-normalised) posterior mean
    logvar: Tensor  # (B, C, T//4, h, w)


@dataclass(frozen=True)
class VAELoss:
    """Parts of `reconstruction_loss` (all scalars; `total` is what to backpropagate)."""

    total: Tensor
    l1: Tensor
    edge: Tensor
    kl: Tensor


class VideoVAE(nn.Module):
    """Causal video VAE with spatial stride `cfg.spatial_stride` and temporal stride 4."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _Encoder(cfg)
        self.decoder = _Decoder(cfg)
        _init_weights(self.encoder, self.encoder.out, cfg.latent_channels)
        _init_weights(self.decoder, self.decoder.out, 0)
        self.encoder.to(memory_format=_CL)
        self.decoder.to(memory_format=_CL)
        # Per-channel statistics of encoded training latents, so the DiT sees ~unit variance.
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    # --- shapes and validation ---
    def _check_video(self, video: Tensor) -> None:
        s, ts = self.cfg.spatial_stride, self.cfg.temporal_stride
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"video: expected (B, 3, T, H, W), got {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        if t < ts or t % ts:
            raise ValueError(f"video: T must be a positive multiple of {ts}, got T={t}")
        if h % s or w % s or h < s or w < s:
            raise ValueError(f"video: H and W must be positive multiples of {s}, got {h}x{w}")

    def _check_latents(self, latents: Tensor) -> None:
        c = self.cfg.latent_channels
        if latents.dim() != 5 or latents.shape[1] != c or latents.shape[2] < 1:
            raise ValueError(f"latents: expected (B, {c}, Tl>=1, h, w), got {tuple(latents.shape)}")

    # --- latent normalisation ---
    def set_latent_stats(self, mean: Tensor, std: Tensor) -> None:
        """Store per-channel latent statistics; `encode` / `decode` then work in unit scale."""
        c = self.cfg.latent_channels
        if mean.shape != (c,) or std.shape != (c,) or bool((std <= 0).any()):
            raise ValueError(f"mean/std: expected shape ({c},) and std > 0")
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std)

    def _normalise(self, raw: Tensor) -> Tensor:
        return (raw - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def _denormalise(self, latents: Tensor) -> Tensor:
        return latents * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(
            1, -1, 1, 1, 1
        )

    # --- encode ---
    def encode_dist(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Raw posterior `(mean, logvar)`, each (B, C, T//4, h, w)."""
        self._check_video(video)
        b, _, t, h, w = video.shape
        frames_x = (
            video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w).contiguous(memory_format=_CL)
        )
        moments = self.encoder(frames_x, t)  # (B*Tl, 2C, h, w)
        tl = t // self.cfg.temporal_stride
        moments = moments.reshape(b, tl, *moments.shape[1:]).permute(0, 2, 1, 3, 4)
        mean, logvar = moments.float().chunk(2, dim=1)
        return mean.contiguous(), logvar.clamp(*LOGVAR_RANGE).contiguous()

    def encode(self, video: Tensor) -> Tensor:
        """Normalised posterior mean (B, C, T//4, h, w) of video in [-1, 1]."""
        mean, _ = self.encode_dist(video)
        return self._normalise(mean)

    def encode_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, h, w): each image encoded as a static group of 4 frames."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected (B, 3, H, W), got {tuple(images.shape)}")
        group = images.unsqueeze(2).expand(-1, -1, self.cfg.temporal_stride, -1, -1)
        return self.encode(group)[:, :, 0]

    # --- decode ---
    def _decode_raw(self, raw: Tensor, states: list[Tensor] | None) -> Tensor:
        b, c, tl, h, w = raw.shape
        z = raw.permute(0, 2, 1, 3, 4).reshape(b * tl, c, h, w)
        z = z.to(self.decoder.inp.weight.dtype).contiguous(memory_format=_CL)
        sub = self.decoder(z, tl, states)  # (B*T, 3*2*2, H/2, W/2) channels-last
        t = tl * self.cfg.temporal_stride
        hh, ww = sub.shape[2:]
        # Pixel shuffle and (B*T, ...) -> (B, 3, T, H, W) in one copy; channel 4*c + 2*i + j is
        # colour c at sub-pixel (i, j), the layout of F.pixel_shuffle.
        sub = sub.permute(0, 2, 3, 1).reshape(b, t, hh, ww, 3, 2, 2)
        return sub.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, 3, t, 2 * hh, 2 * ww)

    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents (B, C, Tl, h, w) -> video (B, 3, 4*Tl, H, W), unclamped."""
        self._check_latents(latents)
        return self._decode_raw(self._denormalise(latents), None)

    def init_decode_cache(
        self,
        batch: int,
        *,
        latent_hw: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> DecodeCache:
        """A zero decode cache for `batch` independent streams (default latent side from cfg)."""
        h, w = latent_hw or (self.cfg.latent_size, self.cfg.latent_size)
        p = self.decoder.inp.weight
        shapes = self.decoder.cache_shapes(h, w)
        return DecodeCache.zeros(shapes, batch, device=device or p.device, dtype=dtype or p.dtype)

    def decode_step(self, latents: Tensor, cache: DecodeCache) -> Tensor:
        """Decode the next latent frame(s) of each row; advances `cache` in place.

        latents: (B, C, Tl, h, w), normally Tl = 1 (one chunk) -> (B, 3, 4*Tl, H, W).
        """
        self._check_latents(latents)
        b, _, _, h, w = latents.shape
        first = cache.slots[0]
        if first.shape[0] != b or first.shape[2:4] != (h, w):
            raise ValueError(
                f"cache: made for batch {first.shape[0]} and latent {tuple(first.shape[2:4])}, "
                f"got latents for batch {b} and latent {(h, w)}"
            )
        return self._decode_raw(self._denormalise(latents), cache.slots)

    # --- training ---
    def forward(
        self,
        video: Tensor,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
        train_encoder: bool = True,
    ) -> VAEOutput:
        """Training pass: encode, sample the posterior (or take its mean), decode (raw space).
        With `train_encoder=False` the encoding runs without a graph (decoder-only training)."""
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            mean, logvar = self.encode_dist(video)
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + eps * torch.exp(0.5 * logvar)
        return VAEOutput(recon=self._decode_raw(z, None), mean=mean, logvar=logvar)


class StreamingDecoder:
    """A `VideoVAE` plus its decode cache: `step(latents)` decodes the next chunk of each row."""

    def __init__(self, vae: VideoVAE, batch: int) -> None:
        self.vae = vae
        self.cache = vae.init_decode_cache(batch)

    def step(self, latents: Tensor) -> Tensor:
        return self.vae.decode_step(latents, self.cache)

    def reset(self) -> None:
        self.cache.reset()


def _spatial_grad_l1(a: Tensor, b: Tensor) -> Tensor:
    """L1 between horizontal and vertical finite differences (penalises blurred edges)."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def reconstruction_loss(
    video: Tensor,
    recon: Tensor,
    mean: Tensor,
    logvar: Tensor,
    *,
    kl_weight: float = 1e-6,
    edge_weight: float = 0.5,
    pixel_weight: Tensor | None = None,
) -> VAELoss:
    """VAE training loss: L1 + `edge_weight` * gradient L1 + `kl_weight` * KL(q || N(0, 1)).

    The KL is averaged per latent element, the L1 terms per pixel; the edge term keeps flat-colour
    cartoon edges (mouth, eyes) sharp where plain L1 tolerates a soft boundary. `pixel_weight`
    (B, T, H, W), mean 1 per frame, weights both L1 terms (e.g. more on the mouth and eyes).
    """
    if video.shape != recon.shape:
        raise ValueError(f"recon: shape {tuple(recon.shape)} != video {tuple(video.shape)}")
    if pixel_weight is not None:
        w = pixel_weight[:, None].to(recon.dtype)  # (B, 1, T, H, W)
        l1 = ((recon - video).abs() * w).mean()
        edge = _spatial_grad_l1(recon * w, video * w)
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
        return VAELoss(total=l1 + edge_weight * edge + kl_weight * kl, l1=l1, edge=edge, kl=kl)
    l1 = (recon - video).abs().mean()
    edge = _spatial_grad_l1(recon, video)
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
    total = l1 + edge_weight * edge + kl_weight * kl
    return VAELoss(total=total, l1=l1, edge=edge, kl=kl)


def load_frozen_vae(path: Path | str, cfg: ModelConfig) -> VideoVAE:
    """A `VideoVAE(cfg)` in eval mode, no grad, from the `vae.*` tensors of an LPM state dict (a
    checkpoint's `model.safetensors` or a stage's `final.safetensors`); a widened decoder's widths
    and the latent width (`latent_mean`) are read off its tensors (`fit_decoder_channels`)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no VAE weights at {path}")
    state = {k[4:]: v.float() for k, v in load_file(str(path)).items() if k.startswith("vae.")}
    if not state:
        raise ValueError(f"{path} holds no 'vae.*' tensors (expected an LPM state dict)")
    try:
        if "latent_mean" in state and latent_channels_of(state) != cfg.latent_channels:
            cfg = cfg.with_overrides(latent_channels=latent_channels_of(state))
        vae = VideoVAE(fit_decoder_channels(cfg, state))
        vae.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"the VAE in {path} does not fit ModelConfig {cfg.name} (latent_channels, "
            f"vae_channels; pass the overrides it was trained with): {str(err)[:300]}"
        ) from err
    return vae.eval().requires_grad_(False)
