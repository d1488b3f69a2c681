"""Attention layers of a DiT block: self-attention, text cross-attention, per-frame audio
cross-attention, and the two ways self-attention is evaluated.

Contract:
- `SelfAttention.project(x)` -> q, k, v (B, H, N, D), QK-RMSNormed and *un-roped* (callers rope;
  caches store un-roped keys).
- `attend(q, k, v, key_bias)`: streaming evaluation, one softmax over already concatenated keys
  [references | history | current chunk]; `key_bias` is None or (B, 1, 1, K) additive (only used when
  batched sessions have different numbers of valid references / history slots). No (Nq, K) mask.
- `attend_streaming(q, k, v, keys, layer)`: streaming evaluation without the concatenation: one
  fused pass over [references | history ring | current chunk] that ropes each segment in-kernel and
  reads the caches where they live (`lpm_npc.kernels.streaming_attention`: the Triton kernel on
  CUDA, its torch reference elsewhere). `keys` (a `StreamingKeys`) says where the K/V are.
- `attend_split(...)`: training evaluation over a whole clip. Reference logits use queries roped at
  chunk-local positions, context logits use queries roped at absolute positions with a block mask;
  both logit blocks are concatenated before one softmax, so it equals `attend` chunk by chunk.
- `TextCrossAttention` and `AudioCrossAttention` (tokens of latent frame f see only frame f's audio
  tokens; its output projection starts at zero so a fresh model ignores audio until trained).

This module knows nothing about caches, positions or sessions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpm_npc.kernels.streaming_attention import StreamingKeys, streaming_attention


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, N, H*D) -> (B, H, N, D)."""
    b, n, _ = x.shape
    return x.view(b, n, n_heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, N, D) -> (B, N, H*D)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    """q/k/v projections with QK-RMSNorm; the attention itself is `attend` or `attend_split`."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, N, dim) -> q, k, v: (B, H, N, D), un-roped."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = self.q_norm(split_heads(q, self.n_heads))
        k = self.k_norm(split_heads(k, self.n_heads))
        return q, k, split_heads(v, self.n_heads)


def attend(q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor | None = None) -> Tensor:
    """q: (B, H, Nq, D), k/v: (B, H, K, D), key_bias: None or (B, 1, 1, K) -> (B, H, Nq, D)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)


def attend_streaming(q: Tensor, k: Tensor, v: Tensor, keys: StreamingKeys, layer: int) -> Tensor:
    """q, k, v: (B, H, N, D) *un-roped* current chunk of `layer` -> (B, H, N, D).

    Equals `attend` over [rope(references) | rope(history) | rope(k)] with the key bias of rows
    that have fewer valid references / slots, without materialising any of it (see
    `lpm_npc.kernels.streaming_attention`; the backend switch is `lpm_npc.kernels.dispatch`).
    """
    return streaming_attention(q, k, v, keys, layer)


def attend_split(
    q_local: Tensor,
    k_ref: Tensor,
    v_ref: Tensor,
    ref_bias: Tensor | None,
    q_abs: Tensor,
    k_ctx: Tensor,
    v_ctx: Tensor,
    ctx_allowed: Tensor,
) -> Tensor:
    """One softmax over [reference logits | context logits] (training pass over a whole clip).

    q_local/q_abs: (B, H, N, D) the same queries roped at chunk-local / absolute positions;
    k_ref/v_ref: (B, H, Kr, D) roped reference keys (Kr may be 0); ref_bias: None or (B, 1, 1, Kr);
    k_ctx/v_ctx: (B, H, N, D) roped at absolute positions; ctx_allowed: (N, N) bool, True = attend.
    """
    scale = q_abs.shape[-1] ** -0.5
    ctx_logits = (q_abs @ k_ctx.transpose(-1, -2)) * scale  # (B, H, N, N)
    ctx_logits = ctx_logits.masked_fill(~ctx_allowed, float("-inf"))
    if k_ref.shape[2] == 0:
        return torch.softmax(ctx_logits.float(), dim=-1).to(v_ctx.dtype) @ v_ctx
    ref_logits = (q_local @ k_ref.transpose(-1, -2)) * scale  # (B, H, N, Kr)
    if ref_bias is not None:
        ref_logits = ref_logits + ref_bias
    probs = torch.softmax(torch.cat([ref_logits, ctx_logits], dim=-1).float(), dim=-1)
    probs = probs.to(v_ctx.dtype)
    n_ref = k_ref.shape[2]
    return probs[..., :n_ref] @ v_ref + probs[..., n_ref:] @ v_ctx


class TextCrossAttention(nn.Module):
    """Tokens attend to the prompt's (already width-projected) text context."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, text: Tensor, text_bias: Tensor | None) -> Tensor:
        """x: (B, N, dim), text: (B, Lt, dim), text_bias: None or (B, 1, 1, Lt) -> (B, N, dim)."""
        q = self.q_norm(split_heads(self.q(x), self.n_heads))
        k, v = self.kv(text).chunk(2, dim=-1)
        k = self.k_norm(split_heads(k, self.n_heads))
        out = attend(q, k, split_heads(v, self.n_heads), text_bias)
        return self.out(merge_heads(out))


class AudioCrossAttention(nn.Module):
    """Per latent frame: the tokens of frame f attend only to the audio tokens of frame f.

    Audio features keep their own width (`audio_dim`); keys and values are projected from it
    directly, which keeps this layer at 2*dim^2 + 2*audio_dim*dim parameters.
    """

    def __init__(self, dim: int, audio_dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(audio_dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // n_heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)
        # Zero output: a fresh block is exactly the audio-free block, so audio is learned as a delta.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, audio: Tensor) -> Tensor:
        """x: (B, T*P, dim) frame-major tokens; audio: (B, T, A, audio_dim) -> (B, T*P, dim)."""
        b, n, dim = x.shape
        frames, n_audio = audio.shape[1], audio.shape[2]
        per_frame = n // frames
        # Fold frames into the batch: frame f can only ever see its own audio tokens.
        xf = x.reshape(b * frames, per_frame, dim)
        q = self.q_norm(split_heads(self.q(xf), self.n_heads))  # (B*T, H, P, D)
        k, v = self.kv(audio.reshape(b * frames, n_audio, -1)).chunk(2, dim=-1)
        k = self.k_norm(split_heads(k, self.n_heads))  # (B*T, H, A, D)
        out = attend(q, k, split_heads(v, self.n_heads))
        return self.out(merge_heads(out).reshape(b, n, dim))
