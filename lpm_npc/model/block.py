"""One DiT layer of Online LPM.

Order (DESIGN §3): adaLN-modulated self-attention (QK-RMSNorm, 3D RoPE) -> text cross-attention ->
audio cross-attention (layer i reads the SPEAK track if i is even, the LISTEN track if i is odd;
per latent frame) -> adaLN-modulated MLP.

adaLN is Wan-style and cheap: the backbone computes one time projection per latent frame,
(B, T, 6, dim), shared by all layers; each layer only adds its own learned (6, dim) table. Because
diffusion forcing gives every latent frame its own t, modulation is per frame, broadcast over the
frame's tokens.

The block does not know how self-attention keys are assembled (references, history ring, masks):
the caller passes `self_attend(q, k, v) -> (B, H, N, D)` with un-roped q/k/v of the block's tokens.
Reference tokens run through the same block with `text=None, audio=None` (a still image has no
audio, and references must not depend on the prompt so they can be cached per character).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lpm_npc.model.attention import (
    AudioCrossAttention,
    SelfAttention,
    TextCrossAttention,
    merge_heads,
)

SelfAttend = Callable[[Tensor, Tensor, Tensor], Tensor]

SPEAK, LISTEN = "speak", "listen"


def audio_track_of_layer(layer_index: int) -> str:
    """Interleaved dual-audio conditioning: even layers read SPEAK, odd layers read LISTEN."""
    return SPEAK if layer_index % 2 == 0 else LISTEN


class DiTBlock(nn.Module):
    """Self-attention, text and audio cross-attention, MLP; adaLN from per-frame diffusion time."""

    def __init__(
        self, dim: int, n_heads: int, ffn_dim: int, audio_dim: int, layer_index: int
    ) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.audio_track = audio_track_of_layer(layer_index)
        self.norm_attn = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, n_heads)
        self.norm_text = nn.LayerNorm(dim, eps=1e-6)
        self.text_attn = TextCrossAttention(dim, n_heads)
        self.norm_audio = nn.LayerNorm(dim, eps=1e-6)
        self.audio_attn = AudioCrossAttention(dim, audio_dim, n_heads)
        self.norm_mlp = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim)
        )
        # Per-layer table added to the shared time projection: shift/scale/gate for attn and mlp.
        self.modulation = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(
        self,
        x: Tensor,
        time_mod: Tensor,
        self_attend: SelfAttend,
        *,
        text: Tensor | None = None,
        text_bias: Tensor | None = None,
        audio: Tensor | None = None,
        text_keep: Tensor | None = None,
        audio_keep: Tensor | None = None,
    ) -> Tensor:
        """x: (B, T*P, dim) frame-major; time_mod: (B, T, 6, dim); audio: (B, T, A, audio_dim) of
        this layer's track; text: (B, Lt, dim); *_keep: None or (B,) 0/1 (condition dropout)."""
        b, n, dim = x.shape
        frames = time_mod.shape[1]
        per_frame = n // frames
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (time_mod + self.modulation).unbind(
            dim=2
        )  # each (B, T, dim)

        def modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
            return _modulate(h, shift, scale)

        def gated(h: Tensor, gate: Tensor) -> Tensor:
            return (h.view(b, frames, per_frame, dim) * gate[:, :, None]).view(b, n, dim)

        q, k, v = self.attn.project(modulate(self.norm_attn(x), shift_a, scale_a))
        x = x + gated(self.attn.out(merge_heads(self_attend(q, k, v))), gate_a)
        if text is not None:
            h = self.text_attn(self.norm_text(x), text, text_bias)
            x = x + (h if text_keep is None else h * text_keep[:, None, None])
        if audio is not None:
            h = self.audio_attn(self.norm_audio(x), audio)
            x = x + (h if audio_keep is None else h * audio_keep[:, None, None])
        h = self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))
        return x + gated(h, gate_m)

    def self_attention_kv(self, x: Tensor, time_mod: Tensor) -> tuple[Tensor, Tensor]:
        """The un-roped self-attention keys and values (B, H, N, D) that `forward` computes for
        `x` (B, T*P, dim) and `time_mod` (B, T, 6, dim), without the rest of the block: the
        noisy-history pass needs only these from its last block."""
        shift_a, scale_a = (time_mod + self.modulation).unbind(dim=2)[:2]
        _, k, v = self.attn.project(_modulate(self.norm_attn(x), shift_a, scale_a))
        return k, v


def _modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: h (B, T*P, dim) * (1 + scale) + shift, with shift/scale (B, T, dim) per frame."""
    b, n, dim = h.shape
    frames = shift.shape[1]
    h = h.view(b, frames, n // frames, dim) * (1 + scale[:, :, None]) + shift[:, :, None]
    return h.view(b, n, dim)
