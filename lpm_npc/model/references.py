"""Reference roles: (role, label) pairs of a reference sheet as ids, and their learned embedding.

A reference image becomes one latent frame (VAE `encode_image`), is patchified like a target frame,
and gets `ReferenceEmbedding(role) + ReferenceEmbedding(label)` added to every token, so the model
can tell the global shot, the four views and the labelled expressions apart. `front_reference` picks
the one latent the backbone's image-to-video input uses (`ModelConfig.reference_concat`). The
transformer pass
over references lives in `DiT.encode_references`; the K/V it produces are held in
`caches.ReferenceCache`. The vocabulary itself (role and label names, their id order) is
`lpm_npc.vocab`, shared with the procedural world. This module does not touch images or the VAE.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lpm_npc.vocab import LABELS, ROLES  # id order of the role and label embeddings


def select_references(roles: list[tuple[str, str]], limit: int) -> list[int]:
    """Indices of the references to keep when a sheet has more than `limit`: the first global,
    then views (front, left, right, back), then expressions in `vocab.EXPRESSIONS` order
    (neutral first), then whatever remains, in sheet order. Returned in sheet order."""

    def priority(index: int) -> tuple[int, int, int]:
        role, label = roles[index]
        rank = ROLES.index(role) if role in ROLES else len(ROLES)
        order = LABELS.index(label) if label in LABELS else len(LABELS)
        return (rank, order, index)

    return sorted(sorted(range(len(roles)), key=priority)[:limit])


def role_ids(roles: list[tuple[str, str]]) -> tuple[Tensor, Tensor]:
    """[(role, label), ...] -> (role ids (R,), label ids (R,)) int64; bad names raise ValueError."""
    role_index, label_index = [], []
    for i, (role, label) in enumerate(roles):
        if role not in ROLES:
            raise ValueError(f"references[{i}].role must be one of {ROLES}, got {role!r}")
        if label not in LABELS:
            raise ValueError(f"references[{i}].label must be one of {LABELS}, got {label!r}")
        role_index.append(ROLES.index(role))
        label_index.append(LABELS.index(label))
    return torch.tensor(role_index, dtype=torch.int64), torch.tensor(label_index, dtype=torch.int64)


def front_reference(
    latents: Tensor, roles: Tensor, labels: Tensor, valid: Tensor | None = None
) -> Tensor:
    """(B, R, C, h, w) references -> (B, C, h, w): per row the first valid front view, else the
    first valid global shot, else the first valid reference (zeros for a row with none).

    The backbone concatenates it to its noisy input when `ModelConfig.reference_concat` is on; it
    is one of the latents the reference path already encodes (the given subset, never more)."""
    ok = torch.ones_like(roles, dtype=torch.bool) if valid is None else valid.bool()
    is_front = (roles == ROLES.index("view")) & (labels == LABELS.index("front"))
    is_global = roles == ROLES.index("global")
    score = ok.long() * (1 + 2 * is_front.long() + is_global.long())  # front 3, global 2, other 1
    index = score.argmax(dim=1)  # the first of the best
    rows = torch.arange(latents.shape[0], device=latents.device)
    front = latents[rows, index]
    return front * ok.any(dim=1).to(front.dtype)[:, None, None, None]


class ReferenceEmbedding(nn.Module):
    """Learned role and label vectors added to a reference's tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.role = nn.Embedding(len(ROLES), dim)
        self.label = nn.Embedding(len(LABELS), dim)
        nn.init.normal_(self.role.weight, std=0.02)
        nn.init.normal_(self.label.weight, std=0.02)

    def forward(self, role: Tensor, label: Tensor) -> Tensor:
        """role, label: (B, R) int64 -> (B, R, dim)."""
        return self.role(role) + self.label(label)
