"""Prompt encoder: style / emotion text ("cheerful", "skeptical, arms crossed") -> token embeddings.

Contract:
- Built-in tokenizer (`tokenize`, `encode_prompt`): lower-cased words (runs of letters, digits and
  apostrophes), each hashed with BLAKE2b (stable across processes and platforms -- never Python's
  salted `hash()`) into ids `[FIRST_WORD_ID, text_vocab)`. Id 0 is padding; id 1 is the
  prompt-start token that every sequence begins with, so even the empty prompt has one real token
  and no attention row is ever fully masked. Words beyond `text_max_tokens - 1` are dropped.
- `TextEncoder(cfg)`: embedding + learned positions + 2 small pre-norm transformer layers, projected
  to `text_dim`. `forward(ids (B, L) | list[str]) -> (emb (B, L, text_dim), mask (B, L) bool)`,
  mask True = a real token (keep), False = padding. `encode_prompts(prompts, device=)` is the
  `PromptEncoder` method the trainer and engine call.
- `PromptEncoder` is the interface a large external encoder (a T5-style model for big presets)
  implements instead; callers only use `dim`, `max_tokens` and `encode_prompts`.

This module does not cache encodings (the engine caches per session prompt) and knows no emotions:
the meaning of words is learned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpm_npc.config import ModelConfig

PAD_ID = 0  # padding (masked out)
START_ID = 1  # prompt-start token at position 0 of every sequence (the "null" prompt alone)
FIRST_WORD_ID = 2  # hashed words land in [FIRST_WORD_ID, text_vocab)
INNER_MAX = 256  # widest internal width of the built-in encoder (large text_dim is a projection)
HEAD_DIM = 32  # attention head width of the built-in encoder
N_LAYERS = 2  # transformer layers of the built-in encoder
_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text` (letters, digits, apostrophes); punctuation separates words."""
    return _WORD.findall(text.lower())


def word_id(word: str, vocab: int) -> int:
    """Stable hashed id of one word in [FIRST_WORD_ID, vocab)."""
    if vocab <= FIRST_WORD_ID:
        raise ValueError(f"text_vocab: must be > {FIRST_WORD_ID}, got {vocab}")
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    return FIRST_WORD_ID + int.from_bytes(digest, "little") % (vocab - FIRST_WORD_ID)


def encode_prompt(text: str, cfg: ModelConfig) -> Tensor:
    """Prompt -> LongTensor (text_max_tokens,): [START, word ids..., PAD...]."""
    if not isinstance(text, str):
        raise TypeError(f"prompt: expected str, got {type(text).__name__}")
    words = tokenize(text)[: cfg.text_max_tokens - 1]
    ids = torch.full((cfg.text_max_tokens,), PAD_ID, dtype=torch.long)
    ids[0] = START_ID
    if words:
        ids[1 : 1 + len(words)] = torch.tensor([word_id(w, cfg.text_vocab) for w in words])
    return ids


def encode_prompts(prompts: Sequence[str], cfg: ModelConfig) -> Tensor:
    """Batch of prompts -> LongTensor (B, text_max_tokens)."""
    if isinstance(prompts, str):
        raise TypeError("prompts: expected a sequence of str, got one str")
    return torch.stack([encode_prompt(p, cfg) for p in prompts])


@runtime_checkable
class PromptEncoder(Protocol):
    """What the model needs from any prompt encoder (built-in or an external large one)."""

    dim: int  # embedding width (cfg.text_dim)
    max_tokens: int  # sequence length L of every output (cfg.text_max_tokens)

    def encode_prompts(
        self, prompts: Sequence[str], device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Prompts -> (emb (B, L, dim), mask (B, L) bool, True = real token, >= 1 per row)."""
        ...


class _Layer(nn.Module):
    """Pre-norm transformer layer with key-padding masked self-attention."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, H, L, D); mask (B, 1, 1, L) broadcasts over heads and queries.
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Built-in prompt encoder of the tiny preset (implements `PromptEncoder`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = cfg.text_dim
        self.max_tokens = cfg.text_max_tokens
        width = min(cfg.text_dim, INNER_MAX)
        heads = max(1, width // HEAD_DIM)
        if width % heads:
            raise ValueError(f"text_dim: internal width {width} not divisible into {heads} heads")
        self.embed = nn.Embedding(cfg.text_vocab, width, padding_idx=PAD_ID)
        self.position = nn.Parameter(torch.randn(cfg.text_max_tokens, width) * 0.02)
        self.layers = nn.ModuleList(_Layer(width, heads) for _ in range(N_LAYERS))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, cfg.text_dim) if width != cfg.text_dim else nn.Identity()

    def encode_ids(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """ids (B, L) -> (emb (B, L, text_dim), mask (B, L) bool)."""
        if ids.dim() != 2 or ids.shape[1] != self.max_tokens or ids.dtype != torch.long:
            raise ValueError(
                f"ids: expected long (B, {self.max_tokens}), got {ids.dtype} {tuple(ids.shape)}"
            )
        if bool(((ids < 0) | (ids >= self.cfg.text_vocab)).any()):
            raise ValueError(f"ids: must lie in [0, {self.cfg.text_vocab})")
        mask = ids != PAD_ID
        # A row of only padding (not made by encode_prompt) still gets one real token to attend.
        mask[:, 0] = True
        x = self.embed(ids) + self.position
        for layer in self.layers:
            x = layer(x, mask)
        emb = self.out(self.norm(x))
        return emb * mask[..., None].to(emb.dtype), mask

    def encode_prompts(
        self, prompts: Sequence[str], device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        ids = encode_prompts(prompts, self.cfg).to(device or self.embed.weight.device)
        return self.encode_ids(ids)

    def forward(self, prompts: Tensor | Sequence[str]) -> tuple[Tensor, Tensor]:
        """ids (B, L) LongTensor or a list of prompt strings -> (emb, mask)."""
        if isinstance(prompts, Tensor):
            return self.encode_ids(prompts)
        return self.encode_prompts(prompts)
