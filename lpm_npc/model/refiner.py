"""The one-step refiner of Online LPM.

Same block type as the backbone (`DiT`), `cfg.refiner_layers` blocks. Input: the backbone's x0 for
the current chunk, re-noised to `cfg.refine_t` with fresh noise; ONE forward pass at t = refine_t;
self-attention sees only the references and the current chunk (no history ring). Its output is what
is decoded and shown; it is never committed to the history (the backbone's noisy-history pass is).
The refiner has its own reference K/V (`encode_references` of this module), cached per character.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lpm_npc.config import ModelConfig
from lpm_npc.model.backbone import DiT, to_x0
from lpm_npc.model.caches import ReferenceBatch
from lpm_npc.model.conditioning import Conditioning


class Refiner(DiT):
    """One-step detail restorer; see the module docstring."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg, cfg.refiner_layers)

    def refine(
        self, x0: Tensor, noise: Tensor, refs: ReferenceBatch | None, cond: Conditioning
    ) -> Tensor:
        """x0, noise: (B, C, L, h, w) -> refined x0 (B, C, L, h, w) in one step."""
        level = self.cfg.refine_t
        x_t = (1.0 - level) * x0 + level * noise
        t = torch.full(x0.shape[:1] + x0.shape[2:3], level, device=x0.device)
        prediction = self.forward_chunk(x_t, t, refs, cond)
        return to_x0(prediction, x_t, t, self.cfg.prediction)
