"""Audio encoder shared by the SPEAK and LISTEN tracks: 16 kHz PCM -> tokens per latent frame.

Contract:
- `AudioEncoder(cfg)(pcm (B, N), track) -> tokens (B, Tl, n_audio_tokens, audio_dim)` where
  `N = Tl * samples_per_latent` (samples_per_latent = 4 video frames * 666 = 2664 for tiny).
  `track` is `Track.SPEAK` / `Track.LISTEN`, the ints 0 / 1, the strings "speak" / "listen", or a
  LongTensor (B,) of those ints (both tracks in one batched call).
- Front end (pluggable, see `AudioFeatureExtractor`): the default `LogMelFrontEnd` is a causal
  log-mel spectrogram computed in torch (no torchaudio): hop 333 samples (2 mel frames per video
  frame, 8 per latent frame), Hann window 666 samples ending at the hop's end (the window reaches
  back into the previous hop, never forward), 1024-point FFT, HTK-mel triangles. Silence is a real
  input: power is floored at `LOG_FLOOR` before the log and the log-mel is offset so that silence
  is exactly 0 -- finite, constant features, never a mask. The causal stack has no biases, so
  silence stays 0 through it and a zero cache is exactly "silence before the stream began".
- Then a causal dilated conv stack over feature frames (only past frames), and a learned mix of
  the feature frames *inside* each latent frame's window into `n_audio_tokens` tokens (so a token may
  look ahead within its own latent frame -- within the chunk -- but never across a chunk boundary).
  Separate learned track embeddings (SPEAK, LISTEN) are added to the tokens.
- Streaming: `init_cache(batch)` + `step(pcm (B, k*samples_per_latent), track, cache)` gives exactly
  the tokens of the full pass over the concatenated audio (up to float rounding). The cache keeps
  the previous PCM the window reaches back into and each causal conv's past inputs; its rows are
  independent streams (`select` / `merge` / `write_rows`, see `vae_cache.CausalConvCache`).

This module does not buffer audio, align tracks to a clock or resample; callers hand it whole
latent frames of 16 kHz mono float32 PCM.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpm_npc.config import SAMPLE_RATE, SAMPLES_PER_FRAME, ModelConfig
from lpm_npc.model.vae_cache import CausalConvCache

MEL_HOP = 333  # samples per mel frame; divides SAMPLES_PER_FRAME (666) -> 2 mel frames per frame
MEL_WINDOW = 666  # Hann window length, samples (reaches one hop into the past)
MEL_FFT = 1024  # FFT size (window zero-padded)
MEL_FMIN, MEL_FMAX = 20.0, 8000.0  # mel filterbank edges, Hz
LOG_FLOOR = 1e-5  # power floor before the log (silence -> log(LOG_FLOOR), finite)
LOG_SCALE = 5.0  # log-mel is (log(power) - log(LOG_FLOOR)) / LOG_SCALE: silence is exactly 0
CONV_DILATIONS = (1, 2, 4)  # causal conv stack over feature frames, kernel 3 (~15 frames of past)
CONV_KERNEL = 3


class Track(IntEnum):
    """Which audio track a batch row belongs to (index of its learned track embedding)."""

    SPEAK = 0  # the NPC's own dialogue (drives lips and speaking gestures)
    LISTEN = 1  # the player's voice (drives listening reactions)


TrackLike = Track | int | str | Tensor


def samples_per_latent(cfg: ModelConfig) -> int:
    """Audio samples per latent frame (per track): temporal_stride video frames."""
    return cfg.temporal_stride * SAMPLES_PER_FRAME


@runtime_checkable
class AudioFeatureExtractor(Protocol):
    """A causal audio front end: PCM -> feature frames, streamable through explicit state.

    Large presets plug an external extractor (e.g. a frozen speech model's features) in here. It
    must be causal at latent-frame granularity: the features of latent frame g depend only on PCM
    up to the end of latent frame g.
    """

    feature_dim: int  # width of one feature frame
    frames_per_latent: int  # feature frames per latent frame (samples_per_latent / hop)

    def state_shapes(self) -> list[tuple[int, ...]]:
        """Per-row shapes of the extractor's streaming state tensors (may be empty)."""
        ...

    def __call__(self, pcm: Tensor, state: list[Tensor] | None) -> Tensor:
        """(B, N) float PCM -> (B, N / samples_per_latent * frames_per_latent, feature_dim).

        With `state` given, read the past from it and write the new past into it (in place).
        """
        ...


def hz_to_mel(hz: Tensor) -> Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int,
    n_fft: int = MEL_FFT,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
) -> Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters on the HTK mel scale, unit peak."""
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"fmin/fmax: need 0 <= fmin < fmax <= {sample_rate / 2}, got {fmin}, {fmax}"
        )
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_lo, mel_hi = (2595.0 * math.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    edges = mel_to_hz(torch.linspace(mel_lo, mel_hi, n_mels + 2, dtype=torch.float64))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,)
    rising = (freqs[:, None] - lower) / (center - lower)
    falling = (upper - freqs[:, None]) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class LogMelFrontEnd(nn.Module):
    """Causal log-mel spectrogram (the tiny preset's `AudioFeatureExtractor`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        per_latent = samples_per_latent(cfg)
        if per_latent % MEL_HOP:
            raise ValueError(
                f"temporal_stride: {per_latent} samples per latent frame not / {MEL_HOP}"
            )
        self.feature_dim = cfg.n_mels
        self.frames_per_latent = per_latent // MEL_HOP
        self.lookback = MEL_WINDOW - MEL_HOP  # past samples each window reaches into
        # Persistent so a model built on the meta device gets them back from its checkpoint.
        self.register_buffer("window", torch.hann_window(MEL_WINDOW, periodic=True))
        self.register_buffer("filters", mel_filterbank(cfg.n_mels))

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.lookback,)]

    def forward(self, pcm: Tensor, state: list[Tensor] | None) -> Tensor:
        b = pcm.shape[0]
        past = pcm.new_zeros(b, self.lookback) if state is None else state[0]
        signal = torch.cat([past, pcm], dim=-1)  # (B, lookback + N)
        if state is not None:
            state[0].copy_(signal[:, -self.lookback :])
        # Frame j spans signal[j*hop : j*hop + window]: it ends where hop j of `pcm` ends.
        # The spectrum is always float32 (even in a bf16 model): the log of small powers needs it.
        frames = signal.float().unfold(-1, MEL_WINDOW, MEL_HOP) * self.window.float()
        power = torch.fft.rfft(frames, n=MEL_FFT).abs().square()  # (B, N/hop, n_fft/2+1)
        mel = power @ self.filters.float()  # (B, N/hop, n_mels)
        return (mel.clamp(min=LOG_FLOOR).log() - math.log(LOG_FLOOR)) / LOG_SCALE


class _CausalConv1d(nn.Module):
    """Residual causal dilated conv over frames (channels first), with explicit past state."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.past = (kernel - 1) * dilation  # past frames this conv reads
        self.channels = channels
        # No bias: a silent input (all zeros) stays zero through the stack, so the zero state of a
        # fresh cache *is* a silent past and the stream needs no warm-up.
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, bias=False)

    def forward(self, x: Tensor, state: Tensor | None) -> Tensor:
        # x: (B, C, F)
        past = x.new_zeros(x.shape[0], self.channels, self.past) if state is None else state
        seq = torch.cat([past, x], dim=-1)  # (B, C, past + F)
        if state is not None:
            state.copy_(seq[:, :, -self.past :])
        return x + self.conv(F.gelu(seq))


class AudioCache(CausalConvCache):
    """Streaming state of one `AudioEncoder` for a batch of streams (made by `init_cache`)."""


class AudioEncoder(nn.Module):
    """Causal audio encoder shared by both tracks (see the module docstring for the contract)."""

    def __init__(self, cfg: ModelConfig, front_end: AudioFeatureExtractor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.samples_per_latent = samples_per_latent(cfg)
        self.front_end = LogMelFrontEnd(cfg) if front_end is None else front_end
        width = cfg.audio_dim
        n_frames = self.front_end.frames_per_latent
        self.n_tokens = cfg.n_audio_tokens
        self.inp = nn.Linear(self.front_end.feature_dim, width, bias=False)  # silence -> 0
        self.convs = nn.ModuleList(_CausalConv1d(width, CONV_KERNEL, d) for d in CONV_DILATIONS)
        # Token j of a latent frame starts as the mean of its share of that frame's feature frames.
        mix = torch.zeros(self.n_tokens, n_frames)
        for j in range(self.n_tokens):
            lo = j * n_frames / self.n_tokens
            hi = (j + 1) * n_frames / self.n_tokens
            for f in range(n_frames):
                mix[j, f] = max(0.0, min(hi, f + 1) - max(lo, f))
        self.token_mix = nn.Parameter(mix / mix.sum(dim=1, keepdim=True))  # (n_tokens, n_frames)
        self.out = nn.Linear(width, cfg.audio_dim)
        self.norm = nn.LayerNorm(cfg.audio_dim)
        self.track_embedding = nn.Embedding(len(Track), cfg.audio_dim)
        nn.init.normal_(self.track_embedding.weight, std=0.5)

    # --- validation ---
    def _check_pcm(self, pcm: Tensor) -> None:
        n = self.samples_per_latent
        if pcm.dim() != 2 or not pcm.is_floating_point():
            raise ValueError(f"pcm: expected float (B, N), got {pcm.dtype} {tuple(pcm.shape)}")
        if pcm.shape[1] < n or pcm.shape[1] % n:
            raise ValueError(
                f"pcm: N must be a positive multiple of {n} samples, got {pcm.shape[1]}"
            )

    def _track_ids(self, track: TrackLike, batch: int, device: torch.device) -> Tensor:
        if isinstance(track, Tensor):
            ids = track.to(device=device, dtype=torch.long).reshape(-1)
            if ids.numel() == 1:
                ids = ids.expand(batch)
            if ids.numel() != batch or bool(((ids < 0) | (ids >= len(Track))).any()):
                raise ValueError(f"track: expected {batch} ids in [0, {len(Track) - 1}]")
            return ids
        if isinstance(track, str):
            names = {t.name.lower(): t for t in Track}
            if track.lower() not in names:
                raise ValueError(f"track: expected one of {sorted(names)}, got {track!r}")
            track = names[track.lower()]
        if int(track) not in (t.value for t in Track):
            raise ValueError(f"track: expected 0 (speak) or 1 (listen), got {track}")
        return torch.full((batch,), int(track), device=device, dtype=torch.long)

    # --- streaming state ---
    def init_cache(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> AudioCache:
        """A zero (silent past) cache for `batch` independent streams.

        The front end's PCM state is always float32; the conv states use the weights' dtype.
        """
        if batch < 1:
            raise ValueError(f"batch: must be >= 1, got {batch}")
        p = self.inp.weight
        device, dtype = device or p.device, dtype or p.dtype
        front = [torch.zeros((batch, *s), device=device) for s in self.front_end.state_shapes()]
        convs = [
            torch.zeros((batch, c.channels, c.past), device=device, dtype=dtype) for c in self.convs
        ]
        return AudioCache(front + convs)

    # --- passes ---
    def _encode(self, pcm: Tensor, track: TrackLike, states: list[Tensor] | None) -> Tensor:
        self._check_pcm(pcm)
        b = pcm.shape[0]
        tl = pcm.shape[1] // self.samples_per_latent
        n_front = len(self.front_end.state_shapes())
        front_state = None if states is None else states[:n_front]
        feats = self.front_end(pcm.float(), front_state)  # (B, Tl*F, feature_dim)
        x = self.inp(feats.to(self.inp.weight.dtype)).transpose(1, 2)  # (B, C, Tl*F)
        for i, conv in enumerate(self.convs):
            x = conv(x, None if states is None else states[n_front + i])
        x = F.gelu(x).transpose(1, 2).reshape(b, tl, self.front_end.frames_per_latent, -1)
        tokens = torch.einsum("nf,btfc->btnc", self.token_mix.to(x.dtype), x)  # (B, Tl, n, C)
        tokens = self.norm(self.out(tokens))
        track_ids = self._track_ids(track, b, pcm.device)
        return tokens + self.track_embedding(track_ids)[:, None, None, :]

    def forward(self, pcm: Tensor, track: TrackLike) -> Tensor:
        """Whole clip from a silent past: (B, N) -> (B, N / samples_per_latent, n_tokens, dim)."""
        return self._encode(pcm, track, None)

    def step(self, pcm: Tensor, track: TrackLike, cache: AudioCache) -> Tensor:
        """Next whole latent frame(s) of each row's stream; advances `cache` in place."""
        if cache.batch != pcm.shape[0]:
            raise ValueError(f"cache: made for batch {cache.batch}, pcm has {pcm.shape[0]} rows")
        return self._encode(pcm, track, cache.slots)

    def receptive_field_seconds(self) -> float:
        """How far back in time one token can hear (window + conv stack), seconds."""
        frames = sum(c.past for c in self.convs)
        hop = self.samples_per_latent / self.front_end.frames_per_latent
        return (frames * hop + MEL_WINDOW + self.samples_per_latent) / SAMPLE_RATE


__all__ = [
    "AudioCache",
    "AudioEncoder",
    "AudioFeatureExtractor",
    "LogMelFrontEnd",
    "Track",
    "mel_filterbank",
    "samples_per_latent",
]
