"""Self-rollout through the real streaming path, for training (Self-Forcing style).

`rollout(student, noise, refs, cond, n_chunks)` generates `n_chunks` chunks exactly as
`engine.generator.StreamingGenerator._run` does — `backbone_steps` Euler steps per chunk with
`Backbone.forward_chunk` reading the per-row `HistoryRing`s, then the noisy-history pass (x0
re-noised to `context_noise`) committed to the ring — so the student is trained on its *own*
history. To keep it affordable on a CPU, gradients flow only through the last denoising step of the
last chunk (earlier steps and chunks run without a graph; the ring stores detached K/V anyway).

`TrainReferences` adapts differentiable per-layer reference K/V (from `DiT.reference_kv`) to the
`ReferenceBatch` interface that `forward_chunk` reads.

This module computes no loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lpm_npc.model.backbone import to_x0
from lpm_npc.model.caches import HistoryBatch, HistoryRing
from lpm_npc.model.flow import sampling_timesteps


class TrainReferences:
    """Per-layer reference K/V (B, H, R*P, D) with an optional validity mask, as a ReferenceBatch."""

    def __init__(
        self, keys: list[Tensor], values: list[Tensor], valid: Tensor | None, per_ref: int
    ) -> None:
        self.keys, self.values = keys, values
        self.tokens = keys[0].shape[2]
        self._bias = None
        if valid is not None and not bool(valid.all()):
            key_valid = valid.repeat_interleave(per_ref, dim=1)
            bias = torch.zeros(key_valid.shape, dtype=keys[0].dtype, device=keys[0].device)
            self._bias = bias.masked_fill(~key_valid, float("-inf"))[:, None, None, :]

    @classmethod
    def build(cls, dit, refs: tuple[Tensor, Tensor, Tensor, Tensor | None]) -> TrainReferences:
        latents, roles, labels, valid = refs
        keys, values = dit.reference_kv(latents, roles, labels, valid)
        return cls(keys, values, valid, dit.grid[0] * dit.grid[1])

    def repeat_rows(self, n: int) -> TrainReferences:
        """Each row repeated `n` times (chunks folded into the batch)."""
        out = TrainReferences.__new__(TrainReferences)
        out.keys = [k.repeat_interleave(n, dim=0) for k in self.keys]
        out.values = [v.repeat_interleave(n, dim=0) for v in self.values]
        out.tokens = self.tokens
        out._bias = None if self._bias is None else self._bias.repeat_interleave(n, dim=0)
        return out

    def keys_values(self, layer: int) -> tuple[Tensor, Tensor]:
        return self.keys[layer], self.values[layer]

    def prepared(self, layer: int, prepare) -> tuple[Tensor, Tensor]:
        # Not cached (unlike ReferenceBatch): the same object serves passes with and without a
        # graph, and a cached graph-free result would cut the gradient to the references.
        return prepare(*self.keys_values(layer))

    def key_bias(self) -> Tensor | None:
        return self._bias


@dataclass(frozen=True)
class Rollout:
    """What a self-rollout produced."""

    x0: Tensor  # (B, C, n*L, h, w) backbone x0 of every chunk; the last chunk carries a graph
    context: Tensor  # (B, C, n*L, h, w) each chunk's x0 re-noised to context_noise (ring input)
    last_input: Tensor  # (B, C, L, h, w) the (detached) x fed to the last step of the last chunk
    last_t: float  # level of that last step


def new_rings(cfg, batch: int, device: torch.device, dtype: torch.dtype) -> list[HistoryRing]:
    """Empty history rings, one per batch row, shaped like the generator's."""
    return [
        HistoryRing(
            cfg.n_layers,
            cfg.n_heads,
            cfg.head_dim,
            cfg.tokens_per_chunk,
            cfg.history_chunks,
            dtype=dtype,
            device=device,
        )
        for _ in range(batch)
    ]


def rollout(student, noise: Tensor, refs: TrainReferences, cond, n_chunks: int) -> Rollout:
    """noise: (B, 2, C, n*L, h, w) — [initial noise, history noise]; cond covers n*L latent frames."""
    cfg = student.cfg
    backbone = student.backbone
    chunk = cfg.chunk_latent_frames
    b = noise.shape[0]
    levels = sampling_timesteps(cfg.backbone_steps, cfg.flow_shift).tolist()
    rings = new_rings(cfg, b, noise.device, noise.dtype)
    outputs, contexts = [], []
    last_input, last_t = noise[:, 0, :, :chunk], levels[0]
    for c in range(n_chunks):
        span = slice(c * chunk, (c + 1) * chunk)
        chunk_cond = cond.frames(span.start, span.stop)
        x = noise[:, 0, :, span]
        x0 = x
        for k, (level, next_level) in enumerate(zip(levels[:-1], levels[1:])):
            history = HistoryBatch(rings)
            t = torch.full((b, chunk), level, device=x.device, dtype=x.dtype)
            with_grad = c == n_chunks - 1 and k == len(levels) - 2
            with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
                if with_grad:
                    last_input, last_t = x.detach(), level
                prediction = backbone.forward_chunk(x.detach(), t, refs, chunk_cond, history)
                x0 = to_x0(prediction, x.detach(), t, cfg.prediction)
            x = (x0 + (next_level / level) * (x - x0)).detach()
        level = cfg.context_noise
        x_ctx = ((1.0 - level) * x0 + level * noise[:, 1, :, span]).detach()
        if c < n_chunks - 1:
            with torch.no_grad():
                t = torch.full((b, chunk), level, device=x.device, dtype=x.dtype)
                history = HistoryBatch(rings)
                backbone.forward_chunk(x_ctx, t, refs, chunk_cond, history, write_history=True)
                history.commit()
        outputs.append(x0)
        contexts.append(x_ctx)
    return Rollout(
        x0=torch.cat(outputs, dim=2),
        context=torch.cat(contexts, dim=2),
        last_input=last_input,
        last_t=last_t,
    )
