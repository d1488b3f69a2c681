"""Stage `rollout`: Self-Forcing-style training on the student's own streaming history (DMD-free).

Per batch the student generates `rollout_chunks` chunks through the real streaming path
(`rollout.rollout`: forward_chunk + HistoryRing, noisy-history commits). The frozen Base LPM teacher
then solves the last chunk from the same initial noise, *given the student's own history* (the
student's earlier chunks at `context_noise`, held fixed), with guidance. Loss: MSE between the
student's last-chunk x0 and that teacher x0. Gradients flow through the student's last denoising
step only (and its reference K/V), which keeps a step affordable on a CPU; the rest of the
rollout runs without a graph, as at inference.
"""

from __future__ import annotations

import torch

from lpm_npc.model.lpm import LPM
from lpm_npc.train.batch import TrainBatch, collate_clips, lpm_dataset
from lpm_npc.train.rollout import TrainReferences, rollout
from lpm_npc.train.stage import StageContext, StageSetup
from lpm_npc.train.stage_base import DENOISER_PARTS, load_student
from lpm_npc.train.stage_ode import DistillObjective, load_teacher
from lpm_npc.train.teacher import solve


class RolloutObjective(DistillObjective):
    def __init__(self, student: LPM, teacher: LPM, train_cfg) -> None:
        super().__init__(student, teacher, train_cfg, DENOISER_PARTS)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.student.cfg
        chunk = cfg.chunk_latent_frames
        student_inputs, teacher_inputs = self.encode(batch)
        x0_data = student_inputs.x0
        n_chunks = min(self.train_cfg.rollout_chunks, x0_data.shape[2] // chunk)
        frames = n_chunks * chunk
        b, c, _, h, w = x0_data.shape
        noise = torch.randn(b, 2, c, frames, h, w, device=x0_data.device, dtype=x0_data.dtype)
        refs = TrainReferences.build(self.student.backbone, student_inputs.refs)
        out = rollout(self.student, noise, refs, student_inputs.cond.frames(0, frames), n_chunks)
        last = slice(frames - chunk, frames)
        start = torch.cat([out.context[:, :, : last.start], noise[:, 0, :, last]], dim=2)
        fixed = torch.arange(frames, device=start.device)[None].expand(b, frames) < last.start
        with torch.no_grad():
            target = solve(
                self.teacher,
                start,
                teacher_inputs.refs,
                teacher_inputs.cond.frames(0, frames),
                student_steps=1,
                substeps=self.train_cfg.teacher_steps,
                guidance=self.train_cfg.teacher_guidance,
                fixed=fixed,
                fixed_t=cfg.context_noise,
            ).x0[:, :, last]
        student_x0 = out.x0[:, :, last]
        loss = torch.mean((student_x0 - target) ** 2)
        data_mse = float(((student_x0.detach() - x0_data[:, :, last]) ** 2).mean())
        return loss, {"data_mse": data_mse}


def build(ctx: StageContext) -> StageSetup:
    objective = RolloutObjective(load_student(ctx), load_teacher(ctx), ctx.train)
    dataset = lpm_dataset(ctx, ctx.stage.clip_frames, objective.student)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips)
