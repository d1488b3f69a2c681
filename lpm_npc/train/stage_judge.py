"""Stage `judge`: train JudgeNet to read motion parameters from rendered frames.

Data: `judge.poses.JudgeFrames` (random characters, independent random poses). The objective
augments frames the way a generator degrades them (blur from a small latent space, sensor-like
noise, slight colour shift) so the judge reads generated video as well as rendered video. Loss:
`judge.net.judge_loss`. The stage output `final.safetensors` is the judge's EMA state dict; the
export copies it to `judge.safetensors`.

This stage does not touch the LPM.
"""

from __future__ import annotations

import torch
from torch import nn

from lpm_npc.judge.net import JudgeNet, frames_to_input, judge_loss
from lpm_npc.judge.poses import JudgeFrames, collate_frames
from lpm_npc.train.loop import StageObjective
from lpm_npc.train.stage import StageContext, StageSetup


def degrade(x: torch.Tensor) -> torch.Tensor:
    """Random per-sample blur (down/up-sampling), additive noise and a colour gain; x in [-1, 1]."""
    batch, _, size, _ = x.shape
    out = x.clone()
    blur = torch.rand(batch, device=x.device)
    for factor, lo in ((2, 0.5), (4, 0.8)):
        chosen = blur > lo
        if chosen.any():
            small = nn.functional.interpolate(out[chosen], scale_factor=1 / factor, mode="area")
            out[chosen] = nn.functional.interpolate(
                small, size=(size, size), mode="bilinear", align_corners=False
            )
    gain = 1.0 + 0.05 * torch.randn(batch, 3, 1, 1, device=x.device)
    noise = torch.rand(batch, 1, 1, 1, device=x.device) * 0.06
    return (out * gain + noise * torch.randn_like(out)).clamp(-1.0, 1.0)


class JudgeObjective(StageObjective):
    def __init__(self, image_size: int, augment: bool = True) -> None:
        super().__init__()
        self.student = JudgeNet(image_size=image_size)
        self.augment = augment

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = frames_to_input(batch["frames"], self.student.image_size)
        if self.augment and self.training:
            x = degrade(x)
        return judge_loss(self.student(x), batch["scalars"], batch["expression"])


def build(ctx: StageContext) -> StageSetup:
    objective = JudgeObjective(ctx.train.judge_size)
    if ctx.init_state is not None:
        objective.student.load_state_dict(ctx.init_state)
    dataset = JudgeFrames(seed=ctx.train.judge_seed, size=ctx.model.image_size)
    return StageSetup(objective=objective, dataset=dataset, collate=collate_frames)
