"""`LPM`: the whole Online LPM model bundle, and Base LPM (teacher) sampling.

`LPM(cfg)` owns `.vae` (VideoVAE), `.audio_encoder` (AudioEncoder, shared by both tracks),
`.text_encoder` (TextEncoder), `.backbone` (causal DiT; bidirectional in teacher mode) and
`.refiner` (one-step DiT). Its state dict is what a checkpoint's `model.safetensors` holds.

`LPM.sample_base(...)`: the Base LPM teacher — the backbone's blocks with bidirectional attention
over a whole clip, `teacher_steps` Euler steps of the flow ODE, and classifier-free guidance with
independent per-condition scales: pred = full + sum_c w_c * (full - pred_without_c) for c in
{text, speak, listen, refs}; each non-zero w_c costs one extra pass.

This module does no I/O and knows nothing of sessions (see `lpm_npc.engine`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.model.audio import AudioEncoder
from lpm_npc.model.backbone import Backbone, count_parameters, to_x0
from lpm_npc.model.conditioning import CONDITIONS, Conditioning
from lpm_npc.model.flow import sampling_timesteps
from lpm_npc.model.refiner import Refiner
from lpm_npc.model.text import TextEncoder
from lpm_npc.model.vae import VideoVAE


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
        steps = steps or self.cfg.teacher_steps
        levels = sampling_timesteps(steps, self.cfg.flow_shift).to(noise.device)
        x = noise
        b, _, n_frames = noise.shape[:3]
        for i in range(steps):
            t = levels[i].expand(b, n_frames).to(noise.dtype)
            full = self._x0(x, t, refs, cond)
            x0 = full
            for name, weight in guidance.items():
                x0 = x0 + weight * (full - self._x0(x, t, refs, cond.dropped(name)))
            t_next = levels[i + 1]
            # Euler step of the flow ODE written with x0: x_next = x0 + t_next * (x - x0) / t.
            x = x0 + (t_next / levels[i]) * (x - x0)
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
