"""Self-rollout through the real streaming path, for training (Self-Forcing style).

`rollout(student, noise, refs, cond, n_chunks)` generates `n_chunks` chunks with the inference
path's own functions (`model.lpm.denoise_chunk`: `backbone_steps` Euler steps per chunk reading
the per-row `HistoryRing`s; `model.lpm.commit_history`: the noisy-history pass, x0 re-noised to
`context_noise`, committed to the ring), so the student is trained on its *own* history. To keep
it affordable on a CPU, gradients flow only through the last denoising step of the last chunk
(earlier steps and chunks run without a graph; the ring stores detached K/V anyway). Audio
encoding, the refiner and decoding are not part of it (the stage hands in encoded conditioning).

`TrainReferences` adapts differentiable per-layer reference K/V (from `DiT.reference_kv`) to the
`ReferenceBatch` interface that `forward_chunk` reads (with `ModelConfig.reference_concat`, also
the front reference latent the backbone's input concatenates, `front`).

This module computes no loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lpm_npc.model.caches import HistoryBatch, HistoryRing
from lpm_npc.model.flow import add_noise
from lpm_npc.model.lpm import commit_history, denoise_chunk
from lpm_npc.model.references import front_reference


class TrainReferences:
    """Per-layer reference K/V (B, H, R*P, D) with an optional validity mask, as a ReferenceBatch."""

    def __init__(
        self,
        keys: list[Tensor],
        values: list[Tensor],
        valid: Tensor | None,
        per_ref: int,
        front: Tensor | None = None,
    ) -> None:
        self.keys, self.values = keys, values
        self.front = front  # (B, C, h, w) or None: the backbone's concatenated front latent
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
        front = front_reference(*refs) if dit.reference_concat else None
        return cls(keys, values, valid, dit.grid[0] * dit.grid[1], front)

    def repeat_rows(self, n: int) -> TrainReferences:
        """Each row repeated `n` times (chunks folded into the batch)."""
        out = TrainReferences.__new__(TrainReferences)
        out.keys = [k.repeat_interleave(n, dim=0) for k in self.keys]
        out.values = [v.repeat_interleave(n, dim=0) for v in self.values]
        out.tokens = self.tokens
        out.front = None if self.front is None else self.front.repeat_interleave(n, dim=0)
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
    chunk = cfg.chunk_latent_frames
    b = noise.shape[0]
    rings = new_rings(cfg, b, noise.device, noise.dtype)
    outputs, contexts = [], []
    for c in range(n_chunks):
        span = slice(c * chunk, (c + 1) * chunk)
        chunk_cond = cond.frames(span.start, span.stop)
        last_chunk = c == n_chunks - 1
        x0 = denoise_chunk(
            student.backbone,
            noise[:, 0, :, span],
            refs,
            chunk_cond,
            HistoryBatch(rings),
            grad_last_step=last_chunk,
        )
        context = add_noise(x0, noise[:, 1, :, span], cfg.context_noise).detach()
        if not last_chunk:
            commit_history(student.backbone, context, refs, chunk_cond, HistoryBatch(rings))
        outputs.append(x0)
        contexts.append(context)
    return Rollout(x0=torch.cat(outputs, dim=2), context=torch.cat(contexts, dim=2))
