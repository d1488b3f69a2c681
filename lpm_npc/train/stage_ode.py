"""Stage `ode`: few-step regression onto the teacher's ODE trajectories (CausVid-style ODE init).

For each batch the frozen Base LPM teacher (`teacher.solve`, guided, bidirectional) integrates from
fresh noise and records its state at each of the student's `backbone_steps` levels and its final
x0. The causal student then gets, per chunk, the teacher's state at a random student level k and
must predict the teacher's final x0 (velocity-weighted MSE). A random prefix of chunks plays the
committed history: the teacher's x0 re-noised to `context_noise`, as the streaming cache holds it.
The student's own encoders make its conditioning; the teacher uses its own (frozen) encoders.

`DistillObjective` (student + frozen teacher + the trajectory-to-input mapping) is shared with the
refiner stage.
"""

from __future__ import annotations

import torch

from lpm_npc.model.lpm import LPM
from lpm_npc.train.batch import (
    ModelInputs,
    TrainBatch,
    collate_clips,
    conditioning,
    encode_pixels,
    lpm_dataset,
    reference_inputs,
    reference_order,
    region_weights,
)
from lpm_npc.train.flow_loss import add_noise, masked_mean, velocity_error
from lpm_npc.train.stage import StageContext, StageSetup
from lpm_npc.train.stage_base import DENOISER_PARTS, LPMObjective, load_student
from lpm_npc.train.teacher import Trajectory, solve


def load_teacher(ctx: StageContext) -> LPM:
    if ctx.teacher_state is None:
        raise ValueError(f"stage {ctx.stage.name} needs the Base LPM teacher (stage 'base')")
    teacher = LPM(ctx.model)
    teacher.load_state_dict(ctx.teacher_state)
    teacher.requires_grad_(False)
    return teacher.eval()


class DistillObjective(LPMObjective):
    """A student LPM distilled from a frozen teacher LPM."""

    def __init__(self, student: LPM, teacher: LPM, train_cfg, trainable: tuple[str, ...]) -> None:
        super().__init__(student, train_cfg, trainable)
        self.teacher = teacher

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def substeps(self) -> int:
        return max(1, self.train_cfg.teacher_steps // self.student.cfg.backbone_steps)

    def encode(self, batch: TrainBatch) -> tuple[ModelInputs, ModelInputs]:
        """(student inputs, teacher inputs) sharing the frozen VAE's latents; no CFG dropout."""
        tc = self.train_cfg
        order = reference_order(batch, tc.train_references, anchor=tc.anchor_references)
        x0, ref_latents = encode_pixels(self.student, batch, self.reference_cache)
        refs = reference_inputs(batch, ref_latents, order)
        student_cond = conditioning(self.student, batch, None, drop=False)
        with torch.no_grad():
            teacher_cond = conditioning(self.teacher, batch, None, drop=False)
        region = region_weights(batch, self.student.cfg, self.train_cfg)
        return ModelInputs(x0, refs, student_cond, region), ModelInputs(x0, refs, teacher_cond)

    def trajectory(self, teacher_inputs: ModelInputs) -> Trajectory:
        return solve(
            self.teacher,
            torch.randn_like(teacher_inputs.x0),
            teacher_inputs.refs,
            teacher_inputs.cond,
            student_steps=self.student.cfg.backbone_steps,
            substeps=self.substeps(),
            guidance=self.train_cfg.teacher_guidance,
        )

    def student_inputs(
        self, traj: Trajectory, level_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per chunk: the teacher state at a student level (random unless `level_index` (B, n)),
        after a random history prefix at `context_noise`. -> (x_in, t (B, T), loss weight (B, T))."""
        cfg = self.student.cfg
        chunk = cfg.chunk_latent_frames
        b, _, n_frames = traj.x0.shape[:3]
        n_chunks = n_frames // chunk
        device = traj.x0.device
        if level_index is None:
            level_index = torch.randint(0, len(traj.states), (b, n_chunks), device=device)
        levels = torch.tensor(traj.levels[: len(traj.states)], device=device, dtype=traj.x0.dtype)
        prefix = torch.randint(0, n_chunks, (b, 1), device=device)
        history = torch.arange(n_chunks, device=device)[None] < prefix  # (B, n_chunks)
        t = torch.where(
            history, torch.full_like(levels[level_index], cfg.context_noise), levels[level_index]
        )
        states = torch.stack(traj.states)  # (S, B, C, T, h, w)
        frame_level = level_index.repeat_interleave(chunk, dim=1)  # (B, T)
        rows = torch.arange(b, device=device)[:, None].expand(b, n_frames)
        frames = torch.arange(n_frames, device=device)[None].expand(b, n_frames)
        x_in = states[frame_level, rows, :, frames].permute(0, 2, 1, 3, 4)  # (B, C, T, h, w)
        t_frames = t.repeat_interleave(chunk, dim=1)
        is_hist = history.repeat_interleave(chunk, dim=1)
        context = add_noise(traj.x0, torch.randn_like(traj.x0), t_frames)
        x_in = torch.where(is_hist[:, None, :, None, None], context, x_in)
        return x_in, t_frames, (~is_hist).float()


class ODEObjective(DistillObjective):
    def __init__(self, student: LPM, teacher: LPM, train_cfg) -> None:
        super().__init__(student, teacher, train_cfg, DENOISER_PARTS)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        student_inputs, teacher_inputs = self.encode(batch)
        traj = self.trajectory(teacher_inputs)
        x_in, t, weight = self.student_inputs(traj)
        x0_hat = self.predict_x0(x_in, t, student_inputs, "causal")
        region = student_inputs.region_weight
        loss = masked_mean(velocity_error(x0_hat, traj.x0, t, region), weight)
        gap = float(((traj.x0 - student_inputs.x0) ** 2).mean())
        return loss, {"teacher_vs_data_mse": gap}


def build(ctx: StageContext) -> StageSetup:
    objective = ODEObjective(load_student(ctx), load_teacher(ctx), ctx.train)
    dataset = lpm_dataset(ctx, ctx.stage.clip_frames, objective.student)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_clips)
