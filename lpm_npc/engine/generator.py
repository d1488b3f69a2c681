"""StreamingGenerator: sessions in, frames out, one batched chunk at a time.

Contract (docs/architecture.md, "engine"):
- `prepare(sheet) -> PreparedCharacter`: reference images -> VAE latents -> reference K/V of every
  backbone and refiner layer, once per character.
- `open(character, prompt=, seed=, size=) -> SessionState`; `feed(state, speak=, listen=)` buffers
  float32 PCM; `chunks_due(state)` counts whole chunks buffered on BOTH tracks; `set_prompt`, `close`.
- `step(states, pad=False) -> list[ChunkFrames]`: one chunk for every given session, the backbone and
  refiner batched across sessions. Per chunk: streaming audio encode (both tracks) ->
  `backbone_steps` Euler steps of the causal backbone (history ring read, never committed) ->
  refiner, one step from the backbone's x0 re-noised to `refine_t` -> noisy-history pass (x0
  re-noised to `context_noise`) whose K/V are committed to the ring -> streaming VAE decode ->
  uint8 frames, resized to the session's size.
- Deterministic per session seed: every session draws its noise from its own torch.Generator, in a
  fixed order (initial noise, refiner noise, history noise), so a session's frames do not depend on
  which other sessions share its batch (up to float rounding of batched matmuls).

The generator knows nothing of gRPC, pacing or scheduling policy (see `engine/` scheduler, `serve/`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lpm_npc.config import SAMPLES_PER_FRAME, ModelConfig
from lpm_npc.engine.session_state import (
    ChunkFrames,
    PreparedCharacter,
    SessionState,
    TrackBuffer,
)
from lpm_npc.model.backbone import to_x0
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.flow import sampling_timesteps
from lpm_npc.model.references import role_ids, select_references
from lpm_npc.model.text import encode_prompt

log = logging.getLogger(__name__)

SPEAK_TRACK, LISTEN_TRACK = 0, 1  # AudioEncoder track ids
MIN_SIZE, MAX_SIZE = 16, 4096  # allowed session frame side, px

__all__ = ["StreamingGenerator", "ChunkFrames", "PreparedCharacter", "SessionState"]


@dataclass(frozen=True)
class _ChunkBatch:
    """What `_schedule` hands `_run`: the sessions of one step and their inputs."""

    states: list[SessionState]
    cond: Conditioning  # batched text + per-frame audio tokens of this chunk
    noise: Tensor  # (B, 3, C, L, h, w): initial, refiner, history noise per row
    started_ns: int


class StreamingGenerator:
    """Per-session streaming generation on one `LPM`; see the module docstring."""

    def __init__(self, cfg: ModelConfig, model) -> None:
        self.cfg = cfg
        self.model = model.eval()
        param = next(model.backbone.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.levels = sampling_timesteps(cfg.backbone_steps, cfg.flow_shift).tolist()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str = "cpu", *, allow_random: bool = False
    ) -> StreamingGenerator:
        from lpm_npc.engine.weights import load_lpm

        cfg, model = load_lpm(path, allow_random=allow_random, device=device)
        return cls(cfg, model)

    def compile(self) -> None:
        """torch.compile the hot, shape-static parts of the step: each block's projections and MLP
        (the cache bookkeeping and attention assembly stay eager, so nothing recompiles as the
        history ring fills)."""
        for dit in (self.model.backbone, self.model.refiner):
            for block in dit.blocks:
                block.mlp.compile(dynamic=False)
                block.attn.qkv.compile(dynamic=False)

    # --- characters -----------------------------------------------------------------------------
    def prepare(self, sheet) -> PreparedCharacter:
        """A ReferenceSheet -> its reference K/V (compute once per character version). A sheet with
        more than `max_references` images keeps the most useful ones (`select_references`)."""
        from lpm_npc.synth.sheet import sheet_to_array

        images, roles = sheet_to_array(sheet, self.cfg.image_size)
        if len(roles) > self.cfg.max_references:
            keep = select_references(list(roles), self.cfg.max_references)
            dropped = [roles[i] for i in range(len(roles)) if i not in keep]
            log.info(
                "sheet %s: using %d of %d references; dropped %s",
                sheet.name,
                len(keep),
                len(roles),
                dropped,
            )
            images, roles = images[keep], [roles[i] for i in keep]
        return self.prepare_images(images, roles, name=sheet.name)

    @torch.inference_mode()
    def prepare_images(
        self, images: np.ndarray, roles: list[tuple[str, str]], *, name: str = ""
    ) -> PreparedCharacter:
        """images: uint8 (R, S, S, 3) with one (role, label) each -> PreparedCharacter."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images: expected uint8 (R, S, S, 3), got {images.dtype} {images.shape}"
            )
        if not 1 <= len(images) <= self.cfg.max_references:
            raise ValueError(
                f"references: {len(images)} given, allowed 1..{self.cfg.max_references}"
            )
        if len(roles) != len(images):
            raise ValueError(f"roles: {len(roles)} given for {len(images)} images")
        pixels = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
        if pixels.shape[-1] != self.cfg.image_size or pixels.shape[-2] != self.cfg.image_size:
            pixels = F.interpolate(
                pixels, size=(self.cfg.image_size,) * 2, mode="bilinear", antialias=True
            )
        latents = self.model.vae.encode_image(pixels.to(self.dtype))  # (R, C, h, w)
        role, label = role_ids(list(roles))
        role, label = role.to(self.device), label.to(self.device)
        return PreparedCharacter(
            name=name,
            roles=tuple((r, lab) for r, lab in roles),
            backbone_refs=self.model.backbone.encode_references(latents, role, label),
            refiner_refs=self.model.refiner.encode_references(latents, role, label),
            model_name=self.cfg.name,
        )

    # --- sessions ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def open(
        self,
        character,
        *,
        prompt: str = "",
        seed: int = 0,
        size: int | None = None,
    ) -> SessionState:
        """A new session of `character` (ReferenceSheet or PreparedCharacter)."""
        if not isinstance(character, PreparedCharacter):
            character = self.prepare(character)
        if character.model_name != self.cfg.name:
            raise ValueError(
                f"character: prepared for model {character.model_name!r}, this is {self.cfg.name!r}"
            )
        size = self.cfg.image_size if size is None else int(size)
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        noise = torch.Generator(device="cpu")
        noise.manual_seed(seed)
        text, mask = self._encode_text(prompt)
        cfg = self.cfg
        audio = self.model.audio_encoder
        return SessionState(
            character=character,
            prompt=prompt,
            seed=seed,
            size=size,
            noise=noise,
            history=HistoryRing(
                cfg.n_layers,
                cfg.n_heads,
                cfg.head_dim,
                cfg.tokens_per_chunk,
                cfg.history_chunks,
                dtype=self.dtype,
                device=self.device,
            ),
            text=text,
            text_mask=mask,
            speak_cache=audio.init_cache(1),
            listen_cache=audio.init_cache(1),
            decode_cache=self.model.vae.init_decode_cache(1),
        )

    def feed(
        self, state: SessionState, speak: np.ndarray | None = None, listen: np.ndarray | None = None
    ) -> None:
        """Buffer any number of float32 mono 16 kHz samples per track."""
        self._check_open(state)
        for name, pcm, buffer in (("speak", speak, state.speak), ("listen", listen, state.listen)):
            if pcm is None:
                continue
            pcm = np.asarray(pcm)
            if pcm.ndim != 1 or pcm.dtype != np.float32:
                raise ValueError(f"{name}: expected float32 mono (N,), got {pcm.dtype} {pcm.shape}")
            buffer.append(pcm)

    def chunks_due(self, state: SessionState) -> int:
        """Whole chunks buffered on both the speak and the listen track."""
        n = self.cfg.samples_per_chunk
        return min(state.speak.available, state.listen.available) // n

    @torch.inference_mode()
    def set_prompt(self, state: SessionState, prompt: str) -> None:
        """Change the style/emotion prompt from the next chunk on (references stay valid)."""
        self._check_open(state)
        state.text, state.text_mask = self._encode_text(prompt)
        state.prompt = prompt

    def close(self, state: SessionState) -> None:
        """Release the session's buffers (its state must not be stepped again)."""
        state.closed = True
        state.speak = TrackBuffer()
        state.listen = TrackBuffer()

    # --- the step: schedule -> run -> postprocess -------------------------------------------------
    @torch.inference_mode()
    def step(self, states: list[SessionState], *, pad: bool = False) -> list[ChunkFrames]:
        """One chunk for every given session, batched (see the module docstring)."""
        batch = self._schedule(states, pad)
        latents = self._run(batch)
        return self._postprocess(batch, latents)

    def _schedule(self, states: list[SessionState], pad: bool) -> _ChunkBatch:
        if not states:
            raise ValueError("step: states must hold at least one session")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("step: a session appears twice in states")
        started = time.monotonic_ns()
        n = self.cfg.samples_per_chunk
        conds, noises = [], []
        for state in states:
            self._check_open(state)
            if not pad and self.chunks_due(state) < 1:
                raise ValueError(
                    f"step: session has {state.speak.available} speak / {state.listen.available} "
                    f"listen samples buffered, {n} each needed (or step with pad=True)"
                )
            speak = self._encode_audio(state.speak.take(n, pad=pad), SPEAK_TRACK, state.speak_cache)
            listen = self._encode_audio(
                state.listen.take(n, pad=pad), LISTEN_TRACK, state.listen_cache
            )
            conds.append(Conditioning(state.text, state.text_mask, speak, listen))
            shape = (3, self.cfg.latent_channels, self.cfg.chunk_latent_frames) + (
                self.cfg.latent_size,
            ) * 2
            noises.append(torch.randn(shape, generator=state.noise))
        noise = torch.stack(noises).to(self.device, self.dtype)
        return _ChunkBatch(list(states), Conditioning.stack(conds), noise, started)

    def _run(self, batch: _ChunkBatch) -> Tensor:
        """Backbone denoising, refiner, noisy-history commit -> refined x0 (B, C, L, h, w)."""
        model, cfg = self.model, self.cfg
        b = len(batch.states)
        frames = cfg.chunk_latent_frames
        refs = ReferenceBatch([s.character.backbone_refs for s in batch.states])
        history = HistoryBatch([s.history for s in batch.states])
        x = batch.noise[:, 0]
        x0 = x
        for level, next_level in zip(self.levels[:-1], self.levels[1:]):
            t = torch.full((b, frames), level, device=self.device, dtype=self.dtype)
            prediction = model.backbone.forward_chunk(x, t, refs, batch.cond, history)
            x0 = to_x0(prediction, x, t, cfg.prediction)
            # Euler step of the flow ODE in x0 form; the last step (next_level = 0) lands on x0.
            x = x0 + (next_level / level) * (x - x0)
        refiner_refs = ReferenceBatch([s.character.refiner_refs for s in batch.states])
        refined = model.refiner.refine(x0, batch.noise[:, 1], refiner_refs, batch.cond)
        # Noisy history: the chunk's x0 re-noised to context_noise; only this pass is committed.
        level = cfg.context_noise
        x_ctx = (1.0 - level) * x0 + level * batch.noise[:, 2]
        t = torch.full((b, frames), level, device=self.device, dtype=self.dtype)
        model.backbone.forward_chunk(x_ctx, t, refs, batch.cond, history, write_history=True)
        history.commit()
        return refined

    def _postprocess(self, batch: _ChunkBatch, latents: Tensor) -> list[ChunkFrames]:
        out = []
        per_chunk = self.cfg.samples_per_chunk
        for row, state in enumerate(batch.states):
            video = self.model.vae.decode_step(latents[row : row + 1], state.decode_cache)
            frames = self._to_uint8(video[0], state.size)  # (N, S, S, 3)
            k = state.chunk_index
            pts = k * per_chunk + np.arange(len(frames), dtype=np.int64) * SAMPLES_PER_FRAME
            out.append(ChunkFrames(k, frames, pts, batch.started_ns, time.monotonic_ns()))
            state.chunk_index += 1
        return out

    # --- helpers ----------------------------------------------------------------------------------
    def _encode_text(self, prompt: str) -> tuple[Tensor, Tensor | None]:
        ids = encode_prompt(prompt, self.cfg)
        if ids.dim() == 1:
            ids = ids[None]
        text, mask = self.model.text_encoder(ids.to(self.device))
        return text, mask

    def _encode_audio(self, pcm: np.ndarray, track: int, cache) -> Tensor:
        samples = torch.from_numpy(pcm)[None].to(self.device)
        return self.model.audio_encoder.step(samples, track, cache)  # (1, L, A, audio_dim)

    def _to_uint8(self, video: Tensor, size: int) -> np.ndarray:
        """(3, N, H, W) in [-1, 1] -> uint8 (N, size, size, 3)."""
        frames = video.float().clamp(-1, 1).permute(1, 0, 2, 3)  # (N, 3, H, W)
        if frames.shape[-1] != size or frames.shape[-2] != size:
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True)
        frames = ((frames + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    @staticmethod
    def _check_open(state: SessionState) -> None:
        if state.closed:
            raise ValueError("session is closed")
