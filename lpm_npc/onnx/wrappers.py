"""Export wrappers: the four streaming modules with every cache as a plain named tensor.

Each wrapper is an `nn.Module` whose `forward` takes and returns only tensors, so the dynamo
exporter can trace it, and whose caches go in as inputs and come back as `*_out` outputs (the
torch modules advance Python cache objects in place instead). The arithmetic is the torch
modules' own: the wrappers call the model's layers (`embed`, the blocks, `output`, the VAE
decoder, the audio front end and conv stack) and only re-express the cache bookkeeping that the
torch path keeps in Python (`HistoryRing`, `ReferenceBatch`) as tensor ops.

Layouts (B = batch rows, n = layers of that DiT, H heads, D head dim, P tokens per chunk):
- `AudioStep(pcm (B, samples_per_chunk), track (B,) int64, audio_cache_i ...)` -> tokens
  (B, L, n_audio_tokens, audio_dim) + the advanced caches. Cache i < n_front is the front end's
  state (the PCM its windows reach back into), the rest the causal convs' past inputs (B, C, past).
- `DecodeStep(latents (B, C, L, h, w), decode_cache_i ...)` -> video (B, 3, 4L, H, W), unclamped,
  + the advanced caches (B, k-1, H_i, W_i, C_i), the layout of `vae_cache.DecodeCache`.
- `BackbonePass(x_t, t, text, text_mask, speak, listen, reference_keys, reference_values,
  reference_length, history_keys, history_values, history_next, history_length, commit)` ->
  (prediction, history_keys_out, history_values_out, history_next_out, history_length_out).
  References: (B, n, H, Kr, D) un-roped `ReferenceCache` keys/values, rows padded, the first
  `reference_length[b]` tokens valid. History ring: (B, n, H, S*P, D) un-roped, slot s at tokens
  [s*P, (s+1)*P) exactly as `HistoryRing.keys`; `history_next` (B,) the slot the next commit
  writes, `history_length` (B,) valid slots (a valid prefix). With `commit` (a 0-d bool) True the
  pass writes its current-chunk K/V into slot `history_next` and advances the ring (the
  noisy-history pass); with False the ring comes back unchanged (denoising passes). Positions are
  relative to the current chunk as in `DiT.forward_chunk`; the rope angles of the history are
  computed in the graph from each slot's chunks-back, float32.
- `RefinerPass(x0, noise, text, text_mask, speak, listen, reference_keys, reference_values,
  reference_length)` -> refined x0: `Refiner.refine` (re-noise to refine_t, one pass over
  [references | current chunk], to x0).
`text_mask` (B, Lt) bool is True for real tokens; its first column must be True (the built-in
tokenizer's start token), so no text row is all padding.

A model with `ModelConfig.reference_concat` (the front reference latent concatenated to the
backbone's input) is not exportable: `require_exportable` refuses it, naming the flag.

These modules do not own weights (they hold the model's modules), do no I/O and know nothing of
sessions or onnxruntime.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.model.attention import attend
from lpm_npc.model.audio import AudioEncoder
from lpm_npc.model.backbone import DiT, to_x0
from lpm_npc.model.block import SPEAK
from lpm_npc.model.rope import RopeTable, apply_rope, token_positions
from lpm_npc.model.vae import VideoVAE
from lpm_npc.model.vae_cache import DecodeCache

NEG_INF = float("-inf")


def require_exportable(cfg: ModelConfig) -> None:
    """Refuse configs the graphs do not implement (the backbone graph has no front-latent input)."""
    if cfg.reference_concat:
        raise ValueError(
            f"ONNX export: model {cfg.name!r} has ModelConfig.reference_concat=True (the front "
            "reference latent concatenated to the backbone input), which the exported backbone "
            "graph does not take; serve it with the torch generator, or export a checkpoint "
            "trained with reference_concat=false"
        )


def _valid_bias(n_tokens: int, n_valid: Tensor, like: Tensor) -> Tensor:
    """(B, n_tokens) additive bias: 0 for token j < n_valid[b], -inf after."""
    index = torch.arange(n_tokens, device=n_valid.device)
    valid = index[None, :] < n_valid[:, None]
    return torch.where(valid, 0.0, NEG_INF).to(like.dtype)


class AudioStep(nn.Module):
    """One streaming step of the audio encoder, both tracks batched (see the module docstring)."""

    def __init__(self, encoder: AudioEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_front = len(encoder.front_end.state_shapes())

    def forward(self, pcm: Tensor, track: Tensor, *caches: Tensor) -> tuple[Tensor, ...]:
        enc = self.encoder
        # Clones are what the torch modules advance in place; they are returned as the new caches.
        states = [c.clone() for c in caches]
        b = pcm.shape[0]
        frames = pcm.shape[1] // enc.samples_per_latent
        feats = enc.front_end(pcm.float(), states[: self.n_front])  # (B, L*F, feature_dim)
        x = enc.inp(feats.to(enc.inp.weight.dtype)).transpose(1, 2)  # (B, C, L*F)
        for i, conv in enumerate(enc.convs):
            x = conv(x, states[self.n_front + i])
        x = F.gelu(x).transpose(1, 2).reshape(b, frames, enc.front_end.frames_per_latent, -1)
        tokens = torch.einsum("nf,btfc->btnc", enc.token_mix.to(x.dtype), x)  # (B, L, A, C)
        tokens = enc.norm(enc.out(tokens))
        tokens = tokens + enc.track_embedding(track)[:, None, None, :]
        return (tokens, *states)


class DecodeStep(nn.Module):
    """One streaming step of the VAE decoder (see the module docstring)."""

    def __init__(self, vae: VideoVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: Tensor, *caches: Tensor) -> tuple[Tensor, ...]:
        cache = DecodeCache([c.clone() for c in caches])
        video = self.vae.decode_step(latents, cache)
        return (video, *cache.slots)


class _ChunkAttention(nn.Module):
    """Rope tables and key assembly of one DiT's streaming pass, as graph ops.

    Holds the two fixed tables (current chunk, one reference frame) as buffers; the history
    table depends on each row's ring phase and is built per call.
    """

    def __init__(self, dit: DiT, cfg: ModelConfig) -> None:
        super().__init__()
        self.dit = dit
        self.chunk_frames = cfg.chunk_latent_frames
        self.tokens_per_chunk = cfg.tokens_per_chunk
        per_ref = dit.grid[0] * dit.grid[1]
        self.tokens_per_reference = per_ref
        current = dit.rope.table(token_positions(cfg.chunk_latent_frames, *dit.grid))
        t_ref = cfg.chunk_latent_frames - 1 + cfg.reference_offset
        reference = dit.rope.table(token_positions(1, *dit.grid, t0=t_ref))
        self.register_buffer("current_cos", current.cos, persistent=False)  # (P, D/2)
        self.register_buffer("current_sin", current.sin, persistent=False)
        self.register_buffer("reference_cos", reference.cos, persistent=False)  # (P_ref, D/2)
        self.register_buffer("reference_sin", reference.sin, persistent=False)
        # History: temporal angle (f - chunks_back*L) * freq_t, spatial angles as the current chunk.
        local = token_positions(cfg.chunk_latent_frames, *dit.grid).to(torch.float64)  # (P, 3)
        n_t = dit.rope.split[0]
        self.register_buffer("freqs_t", dit.rope.freqs_t.float(), persistent=False)  # (n_t,)
        self.register_buffer("local_t", local[:, 0].float(), persistent=False)  # (P,)
        spatial = torch.cat(
            [local[:, 1:2] * dit.rope.freqs_h, local[:, 2:3] * dit.rope.freqs_w], dim=-1
        )
        self.register_buffer("spatial_cos", spatial.cos().float(), persistent=False)
        self.register_buffer("spatial_sin", spatial.sin().float(), persistent=False)
        self.n_time_pairs = n_t

    def reference_table(self, n_tokens: int) -> RopeTable:
        index = torch.arange(n_tokens, device=self.reference_cos.device) % self.tokens_per_reference
        return RopeTable(cos=self.reference_cos[index], sin=self.reference_sin[index])

    def history_table(self, n_tokens: int, history_next: Tensor) -> RopeTable:
        """(B, 1, S*P, D/2) cos/sin of every ring token, relative to the current chunk."""
        p = self.tokens_per_chunk
        token = torch.arange(n_tokens, device=history_next.device)
        slots = n_tokens // p
        slot = token // p  # (S*P,)
        # HistoryRing.chunks_back: slot s holds the chunk (next - 1 - s) mod S + 1 chunks ago
        # (next - 1 - s lies in [-S, S-1]: the mod is one conditional add, traceable with a
        # symbolic S).
        back = history_next[:, None] - 1 - slot[None, :]  # (B, S*P)
        back = torch.where(back < 0, back + slots, back) + 1
        local = token % p
        time = self.local_t[local][None, :] - (back * self.chunk_frames).float()  # (B, S*P)
        angle_t = time[..., None] * self.freqs_t  # (B, S*P, n_t)
        b = history_next.shape[0]
        spatial_cos = self.spatial_cos[local][None].expand(b, -1, -1)
        spatial_sin = self.spatial_sin[local][None].expand(b, -1, -1)
        cos = torch.cat([angle_t.cos(), spatial_cos], dim=-1)[:, None]
        sin = torch.cat([angle_t.sin(), spatial_sin], dim=-1)[:, None]
        return RopeTable(cos=cos, sin=sin)

    def run(
        self,
        x_t: Tensor,
        t: Tensor,
        text: Tensor,
        text_mask: Tensor,
        speak: Tensor,
        listen: Tensor,
        reference_keys: Tensor,
        reference_values: Tensor,
        reference_length: Tensor,
        history: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The streaming pass -> (prediction, per-layer current K, per-layer current V)."""
        dit = self.dit
        b, _, n_frames = x_t.shape[:3]
        x = dit.embed(dit.patchify(x_t), n_frames)  # (B, N, dim)
        emb, mod = dit.time_modulation(t)
        text_ctx = dit.text_proj(text.to(x.dtype))
        text_bias = torch.where(text_mask, 0.0, NEG_INF).to(x.dtype)[:, None, None, :]
        current = RopeTable(cos=self.current_cos, sin=self.current_sin)
        n_ref = reference_keys.shape[3]
        ref_table = self.reference_table(n_ref)
        parts = [_valid_bias(n_ref, reference_length, x)]
        hist_table = None
        if history is not None:
            history_keys, history_values, history_next, history_length = history
            n_hist = history_keys.shape[3]
            hist_table = self.history_table(n_hist, history_next)
            slot = torch.arange(n_hist, device=x.device) // self.tokens_per_chunk
            valid = slot[None, :] < history_length[:, None]
            parts.append(torch.where(valid, 0.0, NEG_INF).to(x.dtype))
        parts.append(x.new_zeros(b, x.shape[1]))
        key_bias = torch.cat(parts, dim=1)[:, None, None, :]  # (B, 1, 1, K)
        new_keys: list[Tensor] = []
        new_values: list[Tensor] = []
        for i, block in enumerate(dit.blocks):

            def self_attend(q: Tensor, k: Tensor, v: Tensor, i: int = i) -> Tensor:
                new_keys.append(k)
                new_values.append(v)
                ks = [apply_rope(reference_keys[:, i].to(k.dtype), ref_table)]
                vs = [reference_values[:, i].to(v.dtype)]
                if hist_table is not None:
                    ks.append(apply_rope(history_keys[:, i].to(k.dtype), hist_table))
                    vs.append(history_values[:, i].to(v.dtype))
                ks.append(apply_rope(k, current))
                vs.append(v)
                keys = torch.cat(ks, dim=2)
                values = torch.cat(vs, dim=2)
                return attend(apply_rope(q, current), keys, values, key_bias)

            audio = speak if block.audio_track == SPEAK else listen
            x = block(
                x, mod, self_attend, text=text_ctx, text_bias=text_bias, audio=audio.to(x.dtype)
            )
        return dit.output(x, emb, n_frames), new_keys, new_values


class BackbonePass(nn.Module):
    """The backbone's streaming chunk pass with the history ring as tensors (module docstring)."""

    def __init__(self, backbone: DiT, cfg: ModelConfig) -> None:
        super().__init__()
        require_exportable(cfg)
        self.chunk = _ChunkAttention(backbone, cfg)
        self.tokens_per_chunk = cfg.tokens_per_chunk

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        text: Tensor,
        text_mask: Tensor,
        speak: Tensor,
        listen: Tensor,
        reference_keys: Tensor,
        reference_values: Tensor,
        reference_length: Tensor,
        history_keys: Tensor,
        history_values: Tensor,
        history_next: Tensor,
        history_length: Tensor,
        commit: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        history = (history_keys, history_values, history_next, history_length)
        prediction, keys, values = self.chunk.run(
            x_t,
            t,
            text,
            text_mask,
            speak,
            listen,
            reference_keys,
            reference_values,
            reference_length,
            history,
        )
        p = self.tokens_per_chunk
        n_hist = history_keys.shape[3]
        slots = n_hist // p
        token = torch.arange(n_hist, device=x_t.device)
        # The commit: this pass's un-roped current-chunk K/V replace slot `history_next`.
        current_keys = torch.stack(keys, dim=1)[:, :, :, token % p]  # (B, n, H, S*P, D)
        current_values = torch.stack(values, dim=1)[:, :, :, token % p]
        write = (token // p)[None, :] == history_next[:, None]  # (B, S*P)
        write = (write & commit)[:, None, None, :, None]
        keys_out = torch.where(write, current_keys.to(history_keys.dtype), history_keys)
        values_out = torch.where(write, current_values.to(history_values.dtype), history_values)
        step = commit.to(history_next.dtype)
        advanced = history_next + step  # in [0, S]: wrap S to 0
        next_out = torch.where(advanced >= slots, advanced - slots, advanced)
        length_out = torch.clamp(history_length + step, max=slots)
        return prediction, keys_out, values_out, next_out, length_out


class RefinerPass(nn.Module):
    """`Refiner.refine` with its reference K/V as tensors (see the module docstring)."""

    def __init__(self, refiner: DiT, cfg: ModelConfig) -> None:
        super().__init__()
        self.chunk = _ChunkAttention(refiner, cfg)
        self.refine_t = cfg.refine_t
        self.prediction = cfg.prediction

    def forward(
        self,
        x0: Tensor,
        noise: Tensor,
        text: Tensor,
        text_mask: Tensor,
        speak: Tensor,
        listen: Tensor,
        reference_keys: Tensor,
        reference_values: Tensor,
        reference_length: Tensor,
    ) -> Tensor:
        level = self.refine_t
        x_t = (1.0 - level) * x0 + level * noise
        t = torch.full(x0.shape[:1] + x0.shape[2:3], level, device=x0.device, dtype=x0.dtype)
        prediction, _, _ = self.chunk.run(
            x_t,
            t,
            text,
            text_mask,
            speak,
            listen,
            reference_keys,
            reference_values,
            reference_length,
            None,
        )
        return to_x0(prediction, x_t, t, self.prediction)
