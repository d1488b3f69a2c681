"""The Base LPM teacher as the distillation stages use it: guided, multi-step, trajectory-recording.

`solve(...)` integrates the flow ODE (Euler, x0 form, as the generator does) with the frozen teacher
backbone (bidirectional), classifier-free guidance per condition
(x0 = full + sum_c w_c (full - x0_without_c), `TrainConfig.teacher_guidance`), on a grid that
contains the student's levels `sampling_timesteps(backbone_steps, flow_shift)` exactly: each student
segment is split into `substeps` teacher steps, uniformly in unshifted time. It returns the state at
every student level (the ODE-regression inputs) and the final x0 (the target).

Frames marked `fixed` are context, not integrated: they keep their input latents at time
`fixed_t` (e.g. the student's own history re-noised to `context_noise` in the rollout stage).

This module never computes gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lpm_npc.model.backbone import to_x0
from lpm_npc.model.flow import euler_step_x0, shift_timesteps


@dataclass(frozen=True)
class Trajectory:
    """Teacher ODE states at the student's levels, and its final sample."""

    levels: tuple[float, ...]  # student levels, from 1 down to 0 (length backbone_steps + 1)
    states: tuple[Tensor, ...]  # x at levels[k], k = 0..backbone_steps-1, each (B, C, T, h, w)
    x0: Tensor  # final clean latents (B, C, T, h, w)


def teacher_grid(student_steps: int, substeps: int, shift: float) -> list[float]:
    """Teacher levels 1 -> 0 with the student's levels at every `substeps`-th entry."""
    raw = torch.linspace(1.0, 0.0, student_steps * substeps + 1, dtype=torch.float64)
    return [float(v) for v in shift_timesteps(raw, shift)]


def guided_x0(
    teacher, x: Tensor, t: Tensor, refs, cond, guidance: tuple[tuple[str, float], ...]
) -> Tensor:
    """Guided x0 of the bidirectional teacher; one extra pass per non-zero guidance weight."""
    cfg = teacher.cfg

    def x0_of(c) -> Tensor:
        prediction = teacher.backbone.forward_train(x, t, refs, c, mode="bidirectional")
        return to_x0(prediction, x, t, cfg.prediction)

    full = x0_of(cond)
    out = full
    for name, weight in guidance:
        if weight:
            out = out + weight * (full - x0_of(cond.dropped(name)))
    return out


@torch.no_grad()
def solve(
    teacher,
    noise: Tensor,
    refs,
    cond,
    *,
    student_steps: int,
    substeps: int,
    guidance: tuple[tuple[str, float], ...],
    fixed: Tensor | None = None,
    fixed_t: float = 0.0,
) -> Trajectory:
    """Integrate from `noise` at t = 1 (frames not `fixed`); see the module docstring.

    noise: (B, C, T, h, w) (fixed frames hold their context latents); fixed: (B, T) bool or None.
    """
    cfg = teacher.cfg
    grid = teacher_grid(student_steps, substeps, cfg.flow_shift)
    b, _, n_frames = noise.shape[:3]
    active = (
        torch.ones(b, n_frames, dtype=torch.bool, device=noise.device) if fixed is None else ~fixed
    )
    mask = active[:, None, :, None, None]
    x = noise
    x0 = noise
    states = []
    for i, (level, next_level) in enumerate(zip(grid[:-1], grid[1:])):
        if i % substeps == 0:
            states.append(x)
        t = torch.where(active, torch.full_like(active, level, dtype=x.dtype), fixed_t)
        x0 = guided_x0(teacher, x, t, refs, cond, guidance)
        stepped = euler_step_x0(x, x0, level, next_level)
        x = torch.where(mask, stepped, x)
    levels = tuple(grid[::substeps])
    return Trajectory(levels=levels, states=tuple(states), x0=torch.where(mask, x0, noise))
