"""Stage `refiner`: the one-step refiner learns to turn the backbone's x0 into the teacher's output.

Per batch the frozen teacher solves from fresh noise (guided, `teacher_steps`); the frozen causal
backbone predicts x0 from the teacher's state at the student's last level (what it sees in its
last streaming step; a random history prefix at `context_noise`). The refiner re-noises that x0 to
`refine_t` and, in one step, attending only to the references and the current chunk (chunks are
folded into the batch), must match the teacher's full-step x0. Loss: MSE on non-history chunks.
Trainable: `.refiner` only; it never feeds the history.
"""

from __future__ import annotations

import dataclasses

import torch

from lpm_npc.model.lpm import LPM
from lpm_npc.train.batch import TrainBatch, collate_clips, lpm_dataset
from lpm_npc.train.rollout import TrainReferences
from lpm_npc.train.stage import StageContext, StageSetup
from lpm_npc.train.stage_base import load_student
from lpm_npc.train.stage_ode import DistillObjective, load_teacher


def fold_chunks(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, C, n*L, h, w) -> (B*n, C, L, h, w), chunk-major within each row."""
    b, c, t, h, w = x.shape
    return x.reshape(b, c, t // chunk, chunk, h, w).permute(0, 2, 1, 3, 4, 5).flatten(0, 1)


def fold_conditioning(cond, n_chunks: int, chunk: int):
    """Repeat text per chunk and split the audio tokens (B, n*L, A, D) into (B*n, L, A, D)."""

    def rows(x):
        return None if x is None else x.repeat_interleave(n_chunks, dim=0)

    return dataclasses.replace(
        cond,
        text=rows(cond.text),
        text_mask=rows(cond.text_mask),
        speak=cond.speak.reshape(-1, chunk, *cond.speak.shape[2:]),
        listen=cond.listen.reshape(-1, chunk, *cond.listen.shape[2:]),
        text_keep=rows(cond.text_keep),
        speak_keep=rows(cond.speak_keep),
        listen_keep=rows(cond.listen_keep),
        refs_keep=rows(cond.refs_keep),
    )


class RefinerObjective(DistillObjective):
    def __init__(self, student: LPM, teacher: LPM, train_cfg) -> None:
        super().__init__(student, teacher, train_cfg, ("refiner",))

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.student.cfg
        chunk = cfg.chunk_latent_frames
        student_inputs, teacher_inputs = self.encode(batch)
        traj = self.trajectory(teacher_inputs)
        b, _, n_frames = traj.x0.shape[:3]
        n_chunks = n_frames // chunk
        last = torch.full((b, n_chunks), len(traj.states) - 1, device=traj.x0.device)
        with torch.no_grad():
            x_in, t, weight = self.student_inputs(traj, last)
            backbone_x0 = self.predict_x0(x_in, t, student_inputs, "causal")
        refs = TrainReferences.build(self.student.refiner, student_inputs.refs).repeat_rows(
            n_chunks
        )
        cond = fold_conditioning(student_inputs.cond, n_chunks, chunk)
        folded = fold_chunks(backbone_x0, chunk)
        refined = self.student.refiner.refine(folded, torch.randn_like(folded), refs, cond)
        error = ((refined - fold_chunks(traj.x0, chunk)) ** 2).mean(dim=(1, 2, 3, 4))
        chunk_weight = weight[:, ::chunk].flatten()
        loss = (error * chunk_weight).sum() / chunk_weight.sum().clamp_min(1.0)
        before = ((folded - fold_chunks(traj.x0, chunk)) ** 2).mean(dim=(1, 2, 3, 4))
        backbone_mse = float((before * chunk_weight).sum() / chunk_weight.sum().clamp_min(1.0))
        return loss, {"backbone_mse": backbone_mse}


def build(ctx: StageContext) -> StageSetup:
    objective = RefinerObjective(load_student(ctx), load_teacher(ctx), ctx.train)
    dataset = lpm_dataset(ctx, ctx.stage.clip_frames, objective.student)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips)
