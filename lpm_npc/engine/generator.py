"""StreamingGenerator: sessions in, frames out, one batched chunk at a time (a `ChunkGenerator`).

Contract (docs/architecture.md, "engine"):
- `from_checkpoint(path=None, ...)`: the one constructor, for a checkpoint or (explicitly) random
  weights of a named preset (`engine.weights.load_lpm`).
- `prepare(images, roles, name=)`: reference images uint8 (R, S, S, 3) and their (role, label)
  -> `PreparedCharacter` (VAE latents -> reference K/V of every backbone and refiner layer), once
  per character. More than `max_references` images keep the most useful (`select_references`).
- `open(character, prompt=, seed=, size=) -> SessionState`; `set_prompt`; `close`.
- `step(states, audio) -> list[ChunkFrames]`: `audio[i]` is exactly one chunk of session i. Reads
  as three calls: `_schedule` (stack every session's text, noise, references, history and caches
  into one `StreamChunk`) -> `LPM.stream_chunk` (everything batched across the sessions) ->
  `_postprocess` (uint8 frames at each session's size, pts from the audio's clock position).
- Deterministic per session seed: every session draws its noise from its own torch.Generator, in a
  fixed order (initial, refiner, history noise), so a session's frames do not depend on which
  other sessions share its batch (up to float rounding of batched matmuls).

The generator holds no audio (the engine session's track buffers are the only ones) and knows
nothing of gRPC, pacing, sheets or scheduling policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lpm_npc.config import ModelConfig
from lpm_npc.engine.protocol import ChunkAudio, ChunkFrames, PreparedCharacter, frame_pts
from lpm_npc.model.audio import AudioCache
from lpm_npc.model.caches import HistoryBatch, HistoryRing, ReferenceBatch
from lpm_npc.model.lpm import LPM, StreamChunk
from lpm_npc.model.references import role_ids, select_references
from lpm_npc.model.vae_cache import DecodeCache

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 4096  # allowed session frame side, px

__all__ = ["SessionState", "StreamingGenerator"]


@dataclass
class SessionState:
    """One session's model state (an opaque handle for callers)."""

    character: PreparedCharacter
    prompt: str
    size: int  # output frame side, px
    noise: torch.Generator  # this session's own noise stream (determinism per seed)
    history: HistoryRing  # backbone K/V of the last history_chunks committed chunks
    text: Tensor  # (1, text_max_tokens, text_dim) text encoder output of `prompt`
    text_mask: Tensor  # (1, text_max_tokens) bool
    speak_cache: AudioCache  # audio encoder streaming state of the SPEAK track
    listen_cache: AudioCache  # audio encoder streaming state of the LISTEN track
    decode_cache: DecodeCache  # VAE streaming decode state
    closed: bool = False


class StreamingGenerator:
    """Per-session streaming generation on one `LPM`; see the module docstring."""

    def __init__(self, cfg: ModelConfig, model: LPM) -> None:
        self.cfg = cfg
        self.model = model.eval()
        param = next(model.backbone.parameters())
        self.device = param.device
        self.dtype = param.dtype

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        *,
        random_weights: bool = False,
        allow_random: bool = False,
        preset: str = "tiny",
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> StreamingGenerator:
        """A generator over `load_lpm(...)` (same arguments; see `engine.weights`)."""
        from lpm_npc.engine.weights import load_lpm

        cfg, model = load_lpm(
            path,
            random_weights=random_weights,
            allow_random=allow_random,
            preset=preset,
            seed=seed,
            device=device,
            dtype=dtype,
        )
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
    @torch.inference_mode()
    def prepare(
        self, images: np.ndarray, roles: Sequence[tuple[str, str]], *, name: str = ""
    ) -> PreparedCharacter:
        """images: uint8 (R, S, S, 3) with one (role, label) each -> PreparedCharacter."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images: expected uint8 (R, S, S, 3), got {images.dtype} {images.shape}"
            )
        roles = [(str(role), str(label)) for role, label in roles]
        if len(roles) != len(images) or not images.shape[0]:
            raise ValueError(f"roles: {len(roles)} given for {len(images)} images (need >= 1)")
        if len(roles) > self.cfg.max_references:
            keep = select_references(roles, self.cfg.max_references)
            dropped = [roles[i] for i in range(len(roles)) if i not in keep]
            log.info(
                "%s: using %d of %d references; dropped %s", name, len(keep), len(roles), dropped
            )
            images, roles = images[keep], [roles[i] for i in keep]
        pixels = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
        if pixels.shape[-1] != self.cfg.image_size or pixels.shape[-2] != self.cfg.image_size:
            pixels = F.interpolate(
                pixels, size=(self.cfg.image_size,) * 2, mode="bilinear", antialias=True
            )
        latents = self.model.vae.encode_image(pixels.to(self.dtype))  # (R, C, h, w)
        role, label = (ids.to(self.device) for ids in role_ids(roles))
        return PreparedCharacter(
            name=name,
            roles=tuple(roles),
            backbone_refs=self.model.backbone.encode_references(latents, role, label),
            refiner_refs=self.model.refiner.encode_references(latents, role, label),
            model_name=self.cfg.name,
        )

    # --- sessions ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def open(
        self,
        character: PreparedCharacter,
        *,
        prompt: str = "",
        seed: int = 0,
        size: int | None = None,
    ) -> SessionState:
        """A new session of a prepared character."""
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
        text, mask = self.model.text_encoder.encode_prompts([prompt], device=self.device)
        cfg = self.cfg
        audio = self.model.audio_encoder
        return SessionState(
            character=character,
            prompt=prompt,
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

    @torch.inference_mode()
    def set_prompt(self, state: SessionState, prompt: str) -> None:
        """Change the style/emotion prompt from the next chunk on (references stay valid)."""
        self._check_open(state)
        state.text, state.text_mask = self.model.text_encoder.encode_prompts(
            [prompt], device=self.device
        )
        state.prompt = prompt

    def close(self, state: SessionState) -> None:
        """Mark the session closed (its state must not be stepped again)."""
        state.closed = True

    # --- the step: schedule -> run -> postprocess -------------------------------------------------
    @torch.inference_mode()
    def step(
        self, states: Sequence[SessionState], audio: Sequence[ChunkAudio]
    ) -> list[ChunkFrames]:
        """One chunk for every given session, batched (see the module docstring)."""
        started = time.monotonic_ns()
        chunk = self._schedule(states, audio)
        video = self.model.stream_chunk(chunk)  # (B, 3, frames_per_chunk, H, W)
        return self._postprocess(states, audio, video, started)

    def _schedule(self, states: Sequence[SessionState], audio: Sequence[ChunkAudio]) -> StreamChunk:
        if not states:
            raise ValueError("step: states must hold at least one session")
        if len(audio) != len(states):
            raise ValueError(f"step: {len(audio)} audio chunks for {len(states)} sessions")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("step: a session appears twice in states")
        n = self.cfg.samples_per_chunk
        for i, (state, chunk) in enumerate(zip(states, audio)):
            self._check_open(state)
            for name, pcm in (("speak", chunk.speak), ("listen", chunk.listen)):
                if pcm.shape != (n,) or pcm.dtype != np.float32:
                    raise ValueError(
                        f"audio[{i}].{name}: expected float32 ({n},), got {pcm.dtype} {pcm.shape}"
                    )
        cfg = self.cfg
        shape = (3, cfg.latent_channels, cfg.chunk_latent_frames, cfg.latent_size, cfg.latent_size)
        noise = torch.stack([torch.randn(shape, generator=s.noise) for s in states])

        def pcm(track: str) -> Tensor:
            return torch.from_numpy(np.stack([getattr(c, track) for c in audio])).to(self.device)

        return StreamChunk(
            speak=pcm("speak"),
            listen=pcm("listen"),
            text=torch.cat([s.text for s in states]),
            text_mask=torch.cat([s.text_mask for s in states]),
            noise=noise.to(self.device, self.dtype),
            backbone_refs=ReferenceBatch([s.character.backbone_refs for s in states]),
            refiner_refs=ReferenceBatch([s.character.refiner_refs for s in states]),
            history=HistoryBatch([s.history for s in states]),
            speak_caches=[s.speak_cache for s in states],
            listen_caches=[s.listen_cache for s in states],
            decode_caches=[s.decode_cache for s in states],
        )

    def _postprocess(
        self,
        states: Sequence[SessionState],
        audio: Sequence[ChunkAudio],
        video: Tensor,
        started_ns: int,
    ) -> list[ChunkFrames]:
        """(B, 3, N, H, W) in [-1, 1] -> per session uint8 (N, size, size, 3) with pts."""
        frames = video.float().clamp(-1, 1).transpose(1, 2)  # (B, N, 3, H, W)
        finished = time.monotonic_ns()
        out = []
        for rgb, state, chunk in zip(frames, states, audio):
            if rgb.shape[-1] != state.size or rgb.shape[-2] != state.size:
                rgb = F.interpolate(rgb, size=(state.size,) * 2, mode="bilinear", antialias=True)
            pixels = ((rgb + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            images = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # (N, S, S, 3)
            pts = frame_pts(chunk.start_sample, len(images))
            out.append(ChunkFrames(chunk.chunk_index, images, pts, started_ns, finished))
        return out

    @staticmethod
    def _check_open(state: SessionState) -> None:
        if state.closed:
            raise ValueError("session is closed")
