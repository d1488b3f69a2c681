"""Stage `causal`: causal fine-tune of the teacher with diffusion forcing and noisy history.

Student: the Base LPM's weights, now run with the block-causal + window mask (`mode="causal"`, the
exact training-time equivalent of streaming chunk by chunk). Per clip and chunk an independent
logit-normal t (diffusion forcing). A random prefix of k chunks (k uniform in 0..n_chunks-1) plays
the committed history: those chunks sit at t = `context_noise`, exactly what the streaming cache
holds, and carry no loss. Loss: velocity loss on the other chunks.

This stage does not use the teacher network (it *is* the teacher, becoming causal).
"""

from __future__ import annotations

import torch

from lpm_npc.model.lpm import LPM
from lpm_npc.train.batch import TrainBatch, collate_clips, lpm_dataset, model_inputs
from lpm_npc.train.flow_loss import add_noise, masked_mean, sample_t, velocity_error
from lpm_npc.train.stage import StageContext, StageSetup
from lpm_npc.train.stage_base import DENOISER_PARTS, LPMObjective, load_student


def history_schedule(
    batch: int, n_chunks: int, chunk: int, context_noise: float, train_cfg, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (t (B, T) per latent frame, loss weight (B, T)): noisy-history prefix + forced chunks."""
    t = sample_t((batch, n_chunks), train_cfg.t_logit_mean, train_cfg.t_logit_std, device)
    prefix = torch.randint(0, n_chunks, (batch, 1), device=device)
    is_history = torch.arange(n_chunks, device=device)[None] < prefix  # (B, n_chunks)
    t = torch.where(is_history, torch.full_like(t, context_noise), t)
    weight = (~is_history).float()
    return t.repeat_interleave(chunk, dim=1), weight.repeat_interleave(chunk, dim=1)


class CausalObjective(LPMObjective):
    def __init__(self, model: LPM, train_cfg) -> None:
        super().__init__(model, train_cfg, DENOISER_PARTS)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = model_inputs(
            self.student, batch, self.train_cfg, drop=True, cache=self.reference_cache
        )
        x0 = inputs.x0
        cfg = self.student.cfg
        b, _, n_frames = x0.shape[:3]
        chunk = cfg.chunk_latent_frames
        t, weight = history_schedule(
            b, n_frames // chunk, chunk, cfg.context_noise, self.train_cfg, x0.device
        )
        x_t = add_noise(x0, torch.randn_like(x0), t)
        x0_hat = self.predict_x0(x_t, t, inputs, "causal")
        loss = masked_mean(velocity_error(x0_hat, x0, t, inputs.region_weight), weight)
        return loss, {"history_frac": float(1 - weight.mean())}


def build(ctx: StageContext) -> StageSetup:
    objective = CausalObjective(load_student(ctx), ctx.train)
    dataset = lpm_dataset(ctx, ctx.stage.clip_frames, objective.student)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips)
