"""The ladder's `teacher` rung: the Base LPM (`teacher.safetensors`) drawing the bench's cases.

`TeacherRenderer(generator, checkpoint_dir)` swaps the teacher's backbone and encoders into the
generator's model only inside `with renderer:` (the student's weights come back on exit, also on
error). `render(character, speak, listen, prompt, n_frames, seed)` then draws a whole track as
independent bidirectional clips of `clip_frames` frames (the Base LPM is a clip model: it has no
history across clips), each from its own seeded noise, sampled with `steps` Euler steps and decoded by the model's VAE. Audio is cut on the media clock (SAMPLES_PER_FRAME per frame), and
a last partial clip is drawn whole and trimmed. Clips of one track are sampled as one batch of
`batch_clips`.

`available` is False (and `reason` says why) when the checkpoint ships no teacher. This module
measures nothing; `bench.quality` does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lpm_npc.config import SAMPLES_PER_FRAME

TEACHER_FILE = "teacher.safetensors"


class TeacherRenderer:
    """See the module docstring."""

    def __init__(
        self,
        generator,
        checkpoint_dir: Path,
        clip_frames: int,
        *,
        steps: int,
        batch_clips: int = 4,
    ) -> None:
        cfg = generator.cfg
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if clip_frames < cfg.temporal_stride or clip_frames % cfg.temporal_stride:
            raise ValueError(
                f"clip_frames must be a positive multiple of {cfg.temporal_stride}, got {clip_frames}"
            )
        if batch_clips < 1:
            raise ValueError(f"batch_clips must be >= 1, got {batch_clips}")
        self.gen, self.cfg = generator, cfg
        self.clip_frames, self.steps, self.batch_clips = clip_frames, steps, batch_clips
        self.path = Path(checkpoint_dir) / TEACHER_FILE
        self.available = self.path.is_file()
        self.reason = "" if self.available else f"{self.path} does not exist"
        self._student: dict[str, torch.Tensor] | None = None
        self._refs: dict[int, tuple] = {}

    def __enter__(self) -> TeacherRenderer:
        from safetensors.torch import load_file

        if not self.available:
            raise FileNotFoundError(f"no teacher weights: {self.reason}")
        model = self.gen.model
        teacher = load_file(str(self.path))
        current = model.state_dict()
        unknown = sorted(set(teacher) - set(current))
        if unknown:
            raise ValueError(f"{self.path}: tensors the model does not have: {unknown[:5]}")
        self._student = {k: v.clone() for k, v in current.items() if k in teacher}
        model.load_state_dict({k: v.to(current[k].dtype) for k, v in teacher.items()}, strict=False)
        return self

    def __exit__(self, *exc) -> None:
        if self._student is not None:
            self.gen.model.load_state_dict(self._student, strict=False)
            self._student = None
        self._refs.clear()

    def _references(self, key: int, images: np.ndarray, roles: list[tuple[str, str]]) -> tuple:
        from lpm_npc.model.references import role_ids

        if key not in self._refs:
            device, model = self.gen.device, self.gen.model
            pixels = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
            latents = model.vae.encode_image(pixels.to(self.gen.dtype))[None]  # (1, R, C, h, w)
            role, label = role_ids(list(roles))
            self._refs[key] = (latents, role[None].to(device), label[None].to(device))
        return self._refs[key]

    @torch.no_grad()
    def render(
        self,
        character: tuple[int, np.ndarray, list[tuple[str, str]]],
        speak: np.ndarray,
        listen: np.ndarray,
        prompt: str,
        n_frames: int,
        seed: int,
    ) -> np.ndarray:
        """uint8 (n_frames, S, S, 3) for one track; `character` = (cache key, sheet images
        uint8 (R, S, S, 3), roles). Must be called inside `with renderer:`."""
        from lpm_npc.model.conditioning import Conditioning

        if self._student is None:
            raise RuntimeError("TeacherRenderer.render must run inside `with renderer:`")
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        model, cfg, device, dtype = self.gen.model, self.cfg, self.gen.device, self.gen.dtype
        latents, role, label = self._references(*character)
        clip, per_clip = self.clip_frames, self.clip_frames * SAMPLES_PER_FRAME
        n_clips = math.ceil(n_frames / clip)
        total = n_clips * per_clip

        def padded(pcm: np.ndarray) -> torch.Tensor:
            out = np.zeros(total, np.float32)
            out[: min(total, len(pcm))] = np.asarray(pcm, np.float32)[:total]
            return torch.from_numpy(out.reshape(n_clips, per_clip)).to(device)

        speak_clips, listen_clips = padded(speak), padded(listen)
        frames = []
        for start in range(0, n_clips, self.batch_clips):
            rows = slice(start, min(n_clips, start + self.batch_clips))
            b = rows.stop - rows.start
            text, mask = model.text_encoder.encode_prompts([prompt] * b, device=device)
            cond = Conditioning(
                text=text,
                text_mask=mask,
                speak=model.audio_encoder(speak_clips[rows], "speak"),
                listen=model.audio_encoder(listen_clips[rows], "listen"),
            )
            refs = (
                latents.expand(b, *latents.shape[1:]),
                role.expand(b, -1),
                label.expand(b, -1),
                None,
            )
            gen = torch.Generator(device="cpu").manual_seed(int(seed) * 10_007 + start)
            shape = (
                b,
                cfg.latent_channels,
                clip // cfg.temporal_stride,
                cfg.latent_size,
                cfg.latent_size,
            )
            noise = torch.randn(shape, generator=gen).to(device, dtype)
            x0 = model.sample_base(noise, refs, cond, steps=self.steps)
            video = model.vae.decode(x0).float().clamp(-1, 1)  # (b, 3, clip, H, W)
            pixels = ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().to(torch.uint8)
            frames.append(pixels.reshape(-1, *pixels.shape[2:]).cpu().numpy())
        return np.concatenate(frames)[:n_frames]
