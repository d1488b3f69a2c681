"""What a DiT pass is conditioned on, besides its noisy latents and references.

`Conditioning` carries the text context (TextEncoder output), both audio tracks as per-latent-frame
tokens (AudioEncoder output) and optional per-row "keep" flags. A keep flag of 0 drops a condition
for that row (classifier-free guidance training and sampling): a dropped text or audio track adds
nothing in its cross-attention; dropped references are hidden from self-attention. Silence on a
track is *not* a dropped track: it is real input that the audio encoder turns into tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

CONDITIONS: tuple[str, ...] = ("text", "speak", "listen", "refs")


@dataclass(frozen=True)
class Conditioning:
    """Inputs shared by the backbone, the refiner and the teacher."""

    text: Tensor  # (B, Lt, text_dim) text encoder output
    text_mask: Tensor | None  # (B, Lt) bool, True = real token; None = all real
    speak: Tensor  # (B, T, n_audio_tokens, audio_dim) SPEAK track tokens per latent frame
    listen: Tensor  # (B, T, n_audio_tokens, audio_dim) LISTEN track tokens per latent frame
    text_keep: Tensor | None = None  # (B,) 1 = use text, 0 = dropped; None = all kept
    speak_keep: Tensor | None = None  # (B,) same for SPEAK
    listen_keep: Tensor | None = None  # (B,) same for LISTEN
    refs_keep: Tensor | None = None  # (B,) same for the reference images

    def dropped(self, *names: str) -> Conditioning:
        """A copy with the named conditions dropped for every row (guidance passes)."""
        unknown = set(names) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"unknown condition(s) {sorted(unknown)}; choose from {CONDITIONS}")
        zeros = torch.zeros(self.speak.shape[0], dtype=self.speak.dtype, device=self.speak.device)
        return replace(self, **{f"{name}_keep": zeros for name in names})

    def frames(self, start: int, stop: int) -> Conditioning:
        """The audio of latent frames [start, stop) (text and flags unchanged)."""
        return replace(self, speak=self.speak[:, start:stop], listen=self.listen[:, start:stop])

    @staticmethod
    def stack(items: list[Conditioning]) -> Conditioning:
        """Concatenate single-session conditionings along the batch (text padded to one length)."""
        width = max(c.text.shape[1] for c in items)
        texts, masks = [], []
        for c in items:
            pad = width - c.text.shape[1]
            mask = c.text_mask
            if mask is None:
                mask = torch.ones(c.text.shape[:2], dtype=torch.bool, device=c.text.device)
            texts.append(torch.nn.functional.pad(c.text, (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(mask, (0, pad), value=False))
        return Conditioning(
            text=torch.cat(texts),
            text_mask=torch.cat(masks),
            speak=torch.cat([c.speak for c in items]),
            listen=torch.cat([c.listen for c in items]),
        )
