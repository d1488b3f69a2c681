"""The first judge architecture (one whole-frame stream), kept so older checkpoints still read.

`judge.safetensors` files written before the two-stream `JudgeNet` carry no `arch` metadata; the
reader builds this net for them. Nothing trains it any more. Same input and output contract as
`judge.net.JudgeNet`, except that it regresses no face crop (`JudgeOutput.crop` is None).
"""

from __future__ import annotations

import torch
from torch import nn

from lpm_npc.judge.net import SCALAR_NAMES, JudgeOutput, _down
from lpm_npc.synth.motion import EXPRESSIONS


class LegacyJudgeNet(nn.Module):
    """Five stride-2 stages to a 4x4 map, flattened, two heads (parameter names of the v1 files)."""

    def __init__(self, image_size: int = 128, width: int = 32) -> None:
        super().__init__()
        if image_size % 32 != 0:
            raise ValueError(f"judge image_size must be a multiple of 32, got {image_size}")
        self.image_size, self.width = image_size, width
        widths = (width, width * 2, width * 3, width * 4, width * 4)
        layers, c_in = [], 3
        for i, c_out in enumerate(widths):
            layers.append(_down(c_in, c_out, 4 if i == 0 else 3, refine=i > 0))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = image_size // 32
        self.trunk = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, 256), nn.SiLU(), nn.Dropout(0.1)
        )
        self.scalar_head = nn.Linear(256, len(SCALAR_NAMES))
        self.expression_head = nn.Linear(256, len(EXPRESSIONS))

    def forward(self, frames: torch.Tensor) -> JudgeOutput:
        # frames: (B, 3, S, S) in [-1, 1]
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            raise ValueError(
                f"judge frames must be {self.image_size}x{self.image_size}, got {tuple(frames.shape)}"
            )
        hidden = self.trunk(self.features(frames))
        return JudgeOutput(
            torch.sigmoid(self.scalar_head(hidden)), self.expression_head(hidden), None
        )
