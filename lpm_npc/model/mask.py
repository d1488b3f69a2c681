"""Self-attention masks of the training pass over a whole clip (never built at inference).

`context_mask(n_frames, chunk_frames, tokens_per_frame, window_chunks, causal)` -> (N, N) bool,
True = the query token may attend to the key token. Causal: block-causal over chunks (a chunk sees
itself bidirectionally and at most `window_chunks` chunks before it, exactly the history ring's
reach). Not causal: everything (Base LPM teacher). References are not part of this mask; they are
separate logits (see `attention.attend_split`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def context_mask(
    n_frames: int,
    chunk_frames: int,
    tokens_per_frame: int,
    window_chunks: int,
    *,
    causal: bool,
    device: torch.device | str = "cpu",
) -> Tensor:
    n = n_frames * tokens_per_frame
    if not causal:
        return torch.ones(n, n, dtype=torch.bool, device=device)
    chunk = torch.arange(n, device=device) // (tokens_per_frame * chunk_frames)  # (N,)
    behind = chunk[:, None] - chunk[None, :]  # query chunk - key chunk
    return (behind >= 0) & (behind <= window_chunks)
