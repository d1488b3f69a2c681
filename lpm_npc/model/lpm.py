"""`LPM`: the whole Online LPM model bundle, its streaming chunk, and Base LPM (teacher) sampling.

`LPM(cfg)` owns `.vae` (VideoVAE), `.audio_encoder` (AudioEncoder, shared by both tracks),
`.text_encoder` (TextEncoder), `.backbone` (causal DiT; bidirectional in teacher mode) and
`.refiner` (one-step DiT). Its state dict is what a checkpoint's `model.safetensors` holds.

`LPM.stream_chunk(StreamChunk) -> video`: one chunk of B independent rows (sessions), every stage
batched across the rows: audio encode (both tracks of every row in one call) -> `denoise_chunk`
(`backbone_steps` Euler steps of the causal backbone, reading the history ring, never writing it)
-> refiner (one step from the backbone's x0 re-noised to `refine_t`) -> `commit_history` (the x0
re-noised to `context_noise` through the backbone; only this pass's K/V enter the ring) -> VAE
decode step. Rows may differ in reference count, history fill and prompt; each row's caches are
its own and are advanced in place, so a row computes the same as it would alone (up to the float
rounding of batched matmuls).

`denoise_chunk` and `commit_history` are the streaming denoising loop and the noisy-history pass;
the training rollout (`train/rollout.py`) calls the same two functions, so training sees exactly
the inference path.

`LPM.sample_base(...)`: the Base LPM teacher — the backbone's blocks with bidirectional attention
over a whole clip, `teacher_steps` Euler steps of the flow ODE, and classifier-free guidance with
independent per-condition scales: pred = full + sum_c w_c * (full - pred_without_c) for c in
{text, speak, listen, refs}; each non-zero w_c costs one extra pass.

This module does no I/O, draws no noise and knows nothing of sessions (see `lpm_npc.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.model.audio import AudioCache, AudioEncoder, Track
from lpm_npc.model.backbone import Backbone, count_parameters, to_x0
from lpm_npc.model.caches import HistoryBatch, ReferenceBatch
from lpm_npc.model.conditioning import CONDITIONS, Conditioning
from lpm_npc.model.flow import add_noise, euler_step_x0, sampling_timesteps
from lpm_npc.model.refiner import Refiner
from lpm_npc.model.text import TextEncoder
from lpm_npc.model.vae import VideoVAE
from lpm_npc.model.vae_cache import CausalConvCache, DecodeCache


@dataclass(frozen=True)
class StreamChunk:
    """One streaming chunk of B independent rows: its inputs and each row's streaming state."""

    speak: Tensor  # (B, samples_per_chunk) float32 PCM of the SPEAK track
    listen: Tensor  # (B, samples_per_chunk) float32 PCM of the LISTEN track
    text: Tensor  # (B, text_max_tokens, text_dim) text encoder output of each row's prompt
    text_mask: Tensor  # (B, text_max_tokens) bool, True = real token
    noise: Tensor  # (B, 3, C, L, h, w): initial, refiner and context noise of each row
    backbone_refs: ReferenceBatch  # reference K/V of the backbone, one cache per row
    refiner_refs: ReferenceBatch  # reference K/V of the refiner, one cache per row
    history: HistoryBatch  # the history ring of each row (read, then committed once)
    speak_caches: list[AudioCache]  # per row (batch 1): SPEAK audio encoder state
    listen_caches: list[AudioCache]  # per row (batch 1): LISTEN audio encoder state
    decode_caches: list[DecodeCache]  # per row (batch 1): VAE streaming decode state


def denoise_chunk(
    backbone: Backbone,
    noise: Tensor,
    refs,
    cond: Conditioning,
    history: HistoryBatch | None,
    *,
    grad_last_step: bool = False,
) -> Tensor:
    """`backbone_steps` Euler steps (x0 form) of the causal backbone over one chunk, from pure
    noise (B, C, L, h, w) at t = 1 down to t = 0 -> the last step's x0 (B, C, L, h, w). Reads the
    history ring, never writes it.

    `refs` is a `ReferenceBatch` (inference) or anything with its interface (training). Only the
    last step may record a graph (`grad_last_step` and grad mode on; Self-Forcing training): the
    other steps run without one, and every step's input is detached.
    """
    cfg = backbone.cfg
    levels = sampling_timesteps(cfg.backbone_steps, cfg.flow_shift).tolist()
    b, _, frames = noise.shape[:3]
    last = len(levels) - 2
    x = x0 = noise
    for k, (level, next_level) in enumerate(zip(levels[:-1], levels[1:])):
        t = torch.full((b, frames), level, device=x.device, dtype=x.dtype)
        grad = grad_last_step and k == last and torch.is_grad_enabled()
        with torch.set_grad_enabled(grad):
            prediction = backbone.forward_chunk(x, t, refs, cond, history)
            x0 = to_x0(prediction, x, t, cfg.prediction)
        x = euler_step_x0(x, x0, level, next_level).detach()
    return x0


@torch.no_grad()
def commit_history(
    backbone: Backbone, context: Tensor, refs, cond: Conditioning, history: HistoryBatch
) -> None:
    """The noisy-history pass: `context` (a chunk's x0 re-noised to `context_noise`) through the
    backbone, writing its K/V to the ring scratch, then one commit. The only pass that commits.
    Only its K/V are kept, so it makes no prediction (`predict=False`)."""
    b, _, frames = context.shape[:3]
    level = backbone.cfg.context_noise
    t = torch.full((b, frames), level, device=context.device, dtype=context.dtype)
    backbone.forward_chunk(context, t, refs, cond, history, write_history=True, predict=False)
    history.commit()


def _merged(caches: list[CausalConvCache]) -> CausalConvCache:
    """One cache whose rows are the given single-row caches (the cache itself for one row)."""
    return caches[0] if len(caches) == 1 else type(caches[0]).merge(caches)


def _write_back(merged: CausalConvCache, caches: list[CausalConvCache]) -> None:
    """Copy each row of `merged` back into its own single-row cache (no-op for one row)."""
    if len(caches) > 1:
        for row, cache in enumerate(caches):
            cache.write_rows([0], merged.select([row]))


class LPM(nn.Module):
    """VAE + audio encoder + text encoder + causal backbone + refiner."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = VideoVAE(cfg)
        self.audio_encoder = AudioEncoder(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.backbone = Backbone(cfg)
        self.refiner = Refiner(cfg)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part and in total."""
        parts = {
            "params_backbone": count_parameters(self.backbone),
            "params_refiner": count_parameters(self.refiner),
            "params_vae": count_parameters(self.vae),
            "params_audio": count_parameters(self.audio_encoder),
            "params_text": count_parameters(self.text_encoder),
        }
        return {"params": count_parameters(self), **parts}

    # --- streaming ------------------------------------------------------------------------------
    @torch.no_grad()
    def stream_chunk(self, chunk: StreamChunk) -> Tensor:
        """One chunk of every row (see the module docstring) -> video (B, 3, frames_per_chunk, H, W)
        in [-1, 1], unclamped. Advances every row's audio, history and decode state."""
        speak, listen = self._encode_audio(chunk)
        cond = Conditioning(chunk.text, chunk.text_mask, speak, listen)
        x0 = denoise_chunk(
            self.backbone, chunk.noise[:, 0], chunk.backbone_refs, cond, chunk.history
        )
        refined = self.refiner.refine(x0, chunk.noise[:, 1], chunk.refiner_refs, cond)
        context = add_noise(x0, chunk.noise[:, 2], self.cfg.context_noise)
        commit_history(self.backbone, context, chunk.backbone_refs, cond, chunk.history)
        decode = _merged(chunk.decode_caches)
        video = self.vae.decode_step(refined, decode)
        _write_back(decode, chunk.decode_caches)
        return video

    def _encode_audio(self, chunk: StreamChunk) -> tuple[Tensor, Tensor]:
        """Both tracks of every row in one encoder call: rows [speak_0..speak_B-1, listen_0..]."""
        b = chunk.speak.shape[0]
        rows = [*chunk.speak_caches, *chunk.listen_caches]
        cache = _merged(rows)
        tracks = torch.tensor([Track.SPEAK] * b + [Track.LISTEN] * b, device=chunk.speak.device)
        pcm = torch.cat([chunk.speak, chunk.listen])  # (2B, samples_per_chunk)
        tokens = self.audio_encoder.step(pcm, tracks, cache)  # (2B, L, n_audio_tokens, audio_dim)
        _write_back(cache, rows)
        return tokens[:b], tokens[b:]

    # --- teacher --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_base(
        self,
        noise: Tensor,
        refs: tuple[Tensor, Tensor, Tensor, Tensor | None] | None,
        cond: Conditioning,
        *,
        steps: int | None = None,
        guidance: dict[str, float] | None = None,
    ) -> Tensor:
        """Base LPM: noise (B, C, T, h, w) -> clean latents, bidirectional over the clip."""
        guidance = {name: w for name, w in (guidance or {}).items() if w}
        unknown = set(guidance) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"guidance keys must be in {CONDITIONS}, got {sorted(unknown)}")
        levels = sampling_timesteps(steps or self.cfg.teacher_steps, self.cfg.flow_shift).tolist()
        x = noise
        b, _, n_frames = noise.shape[:3]
        for level, next_level in zip(levels[:-1], levels[1:]):
            t = torch.full((b, n_frames), level, device=noise.device, dtype=noise.dtype)
            full = self._x0(x, t, refs, cond)
            x0 = full
            for name, weight in guidance.items():
                x0 = x0 + weight * (full - self._x0(x, t, refs, cond.dropped(name)))
            x = euler_step_x0(x, x0, level, next_level)
        return x

    def _x0(
        self,
        x: Tensor,
        t: Tensor,
        refs: tuple[Tensor, Tensor, Tensor, Tensor | None] | None,
        cond: Conditioning,
    ) -> Tensor:
        prediction = self.backbone.forward_train(x, t, refs, cond, mode="bidirectional")
        return to_x0(prediction, x, t, self.cfg.prediction)
