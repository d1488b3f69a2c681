"""The Online LPM DiT: token embedding, blocks, head, and its two ways of running.

`DiT` is shared by the causal backbone and the refiner (same block type, different depth):
- `encode_references(latents, roles, labels)` -> `ReferenceCache`: references pass through the blocks
  at t=0, attending only to each other, and each layer's un-roped K/V are kept. Done once per
  character (text and audio are not involved, so a prompt change does not invalidate it).
- `forward_chunk(x_t, t, refs, cond, history=None, write_history=False)`: the streaming step for one
  chunk. Self-attention keys = [references | history ring | current chunk]; the chunk is
  bidirectional inside. Positions are always relative to the current chunk:
    current chunk token    (f, h, w)               f in 0..L-1 (local latent frame)
    history, j chunks back (-j*L + f, h, w)
    reference              (L-1+reference_offset, h, w)  (the same spatial grid as targets, so a
                                                          target copies from the same place)
  so a chunk at index 5 and at index 5+10^6 computes the same thing given the same caches.

Input (`input_tokens`, the one place it is built): the noisy latents, patchified. With
`cfg.reference_concat` (the backbone only; image-to-video style, as Wan2.1-I2V) the front reference
latent (`references.front_reference`: front view, else the global shot) is concatenated to them
along channels, broadcast over every latent frame, so the patch embedding takes 2 * latent_channels;
the front comes with the references (`ReferenceCache.front` / `ReferenceBatch.front` when
streaming, the `refs` tuple in `forward_train`), is zero for rows whose references are dropped
(`refs_keep` 0) or absent, and reference tokens get zeros there.

`Backbone(DiT)` adds `forward_train(x_t, t, refs, cond, mode)`: a whole clip in one pass, with the
block-causal + window mask (`mode="causal"`, the streaming path's exact equivalent: history and
current tokens are roped at absolute positions — only differences matter — and the queries are
roped a second time at chunk-local positions for the reference logits) or full attention
(`mode="bidirectional"`, the Base LPM teacher). Self-Forcing rollouts use `forward_chunk` itself with
a `HistoryBatch`; the ring stores detached K/V, so gradients flow through the current chunk only.

Prediction parameterisation (`cfg.prediction`): "x0" (default) — the network outputs the clean latent;
training uses the velocity loss on v = (x_t - x0_hat) / t (DESIGN §7: x0-prediction with a velocity
loss trained best on CPU). "v" — the network outputs the velocity. `to_x0` converts either to x0.
Flow convention: x_t = (1 - t) x0 + t noise, t=1 is pure noise.

This module knows nothing of sessions, audio buffers or pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.kernels.streaming_attention import StreamingKeys
from lpm_npc.kernels.streaming_rope import StreamingRope
from lpm_npc.model.attention import attend, attend_split, attend_streaming
from lpm_npc.model.block import SPEAK, DiTBlock
from lpm_npc.model.caches import HistoryBatch, ReferenceBatch, ReferenceCache
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.mask import context_mask
from lpm_npc.model.references import ReferenceEmbedding, front_reference
from lpm_npc.model.rope import Rope3D, RopeTable, apply_rope, token_positions


def timestep_features(t: Tensor, n_freqs: int) -> Tensor:
    """Sinusoidal features of diffusion time t in [0, 1]: (...,) -> (..., n_freqs)."""
    half = n_freqs // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = (t.float() * 1000.0)[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def spatial_sincos(grid: tuple[int, int], dim: int) -> Tensor:
    """(gh*gw, dim) 2D sine-cosine embedding: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for the spatial embedding, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    rows, cols = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float64),
        torch.arange(grid[1], dtype=torch.float64),
        indexing="ij",
    )
    parts = []
    for axis in (rows.flatten(), cols.flatten()):
        angles = axis[:, None] * freqs[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


def to_x0(prediction: Tensor, x_t: Tensor, t: Tensor, kind: str) -> Tensor:
    """Model output -> clean latent. t: (B, T) per latent frame; latents (B, C, T, h, w)."""
    if kind == "x0":
        return prediction
    return x_t - t[:, None, :, None, None].to(x_t.dtype) * prediction


class DiT(nn.Module):
    """Embeddings + `n_layers` DiT blocks + head; see the module docstring."""

    def __init__(self, cfg: ModelConfig, n_layers: int, *, reference_concat: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_layers = n_layers
        self.reference_concat = reference_concat
        dim = cfg.dim
        pt, ph, pw = cfg.patch_size
        self.patch_dim = cfg.latent_channels * pt * ph * pw
        # input channels: the noisy latent, and with reference_concat the front reference latent
        self.in_channels = cfg.latent_channels * (2 if reference_concat else 1)
        self.grid = (cfg.latent_size // ph, cfg.latent_size // pw)
        self.patch_embed = nn.Linear(self.in_channels * pt * ph * pw, dim)
        if reference_concat:  # latent half as without the lever, front half zero: learns from 0
            bound = 1.0 / math.sqrt(self.patch_dim)
            with torch.no_grad():
                self.patch_embed.weight[:, : self.patch_dim].uniform_(-bound, bound)
                self.patch_embed.weight[:, self.patch_dim :].zero_()
                self.patch_embed.bias.uniform_(-bound, bound)
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        # One time projection shared by all layers (each adds its own table): keeps adaLN cheap.
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
        )
        self.reference_embed = ReferenceEmbedding(dim)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, cfg.n_heads, cfg.ffn_dim, cfg.audio_dim, i) for i in range(n_layers)
        )
        self.head_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.head_modulation = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.head = nn.Linear(dim, self.patch_dim)
        self.rope = Rope3D(cfg.head_dim, cfg.rope_theta)
        # Fixed (not learned, not saved) absolute position of each token in its frame, shared by
        # targets, history and references: a target finds "the same place" in a reference by
        # content, so copying identity is a local match instead of a search (DESIGN §7).
        if cfg.spatial_position_embedding:
            pe = spatial_sincos(self.grid, dim)
        else:
            pe = torch.zeros(self.grid[0] * self.grid[1], dim)
        self.register_buffer("spatial_pe", pe, persistent=False)  # (P, dim)
        # Rope tables depend only on shapes / ring phase: computed once, reused every chunk.
        self._tables: dict[tuple, RopeTable] = {}
        self._streaming_ropes: dict[torch.device, StreamingRope] = {}  # per-axis rows, per device

    # --- tokens -------------------------------------------------------------------------------
    def patchify(self, latents: Tensor) -> Tensor:
        """(B, C, T, h, w) -> (B, T*gh*gw, C*ph*pw), frame-major then row-major."""
        b, c, t, h, w = latents.shape
        _, ph, pw = self.cfg.patch_size
        x = latents.reshape(b, c, t, h // ph, ph, w // pw, pw)
        return x.permute(0, 2, 3, 5, 1, 4, 6).reshape(b, t * (h // ph) * (w // pw), c * ph * pw)

    def unpatchify(self, tokens: Tensor, n_frames: int) -> Tensor:
        """(B, T*gh*gw, C*ph*pw) -> (B, C, T, h, w)."""
        b = tokens.shape[0]
        _, ph, pw = self.cfg.patch_size
        gh, gw = self.grid
        c = self.cfg.latent_channels
        x = tokens.reshape(b, n_frames, gh, gw, c, ph, pw)
        return x.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, c, n_frames, gh * ph, gw * pw)

    def input_tokens(
        self, latents: Tensor, front: Tensor | None = None, keep: Tensor | None = None
    ) -> Tensor:
        """Latents (B, C, T, h, w) -> patch tokens (B, T*P, in_channels*ph*pw), the input of
        `embed`. With `reference_concat`, `front` (B, C, h, w) is concatenated along channels and
        broadcast over T (zeros when None, and for rows whose `keep` (B,) is 0)."""
        if not self.reference_concat:
            return self.patchify(latents)
        b, c, n_frames, h, w = latents.shape
        if front is None:
            extra = latents.new_zeros(b, c, 1, h, w)
        else:
            extra = front.to(latents.dtype)[:, :, None]
            if keep is not None:
                extra = extra * keep.to(latents.dtype)[:, None, None, None, None]
        return self.patchify(torch.cat([latents, extra.expand(b, c, n_frames, h, w)], dim=1))

    def _streaming_front(self, refs) -> Tensor | None:
        """The front reference latents (B, C, h, w) that come with a step's references."""
        if not self.reference_concat or refs is None:
            return None
        if refs.front is None:
            raise ValueError(
                "reference_concat is on but the references carry no front latent: encode them "
                "with this backbone (encode_references / TrainReferences.build)"
            )
        return refs.front

    def embed(self, tokens: Tensor, n_frames: int) -> Tensor:
        """Patch tokens (B, n_frames*P, patch_dim) -> embeddings (B, n_frames*P, dim)."""
        x = self.patch_embed(tokens.to(self.head.weight.dtype))
        if not self.cfg.spatial_position_embedding:
            return x
        b, n, dim = x.shape
        pe = self.spatial_pe.to(x.dtype)
        return (x.view(b, n_frames, -1, dim) + pe).view(b, n, dim)

    def time_modulation(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """t: (B, T) -> (embedding (B, T, dim), shared block modulation (B, T, 6, dim))."""
        emb = self.time_mlp(timestep_features(t, self.cfg.time_freq_dim).to(self.head.weight.dtype))
        mod = self.time_proj(emb).unflatten(-1, (6, self.cfg.dim))
        return emb, mod

    def text_context(self, cond: Conditioning) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """-> (text (B, Lt, dim), key bias (B, 1, 1, Lt) or None, text keep (B,) or None)."""
        text = self.text_proj(cond.text.to(self.head.weight.dtype))
        keep = cond.text_keep
        if cond.text_mask is None or bool(cond.text_mask.all()):
            return text, None, keep
        mask = cond.text_mask
        empty = ~mask.any(dim=1)  # rows with no text token: drop text rather than softmax(-inf)
        if bool(empty.any()):
            mask = mask | empty[:, None]
            keep_empty = (~empty).to(text.dtype)
            keep = keep_empty if keep is None else keep * keep_empty
        bias = torch.zeros(mask.shape, dtype=text.dtype, device=text.device)
        bias = bias.masked_fill(~mask, float("-inf"))[:, None, None, :]
        return text, bias, keep

    def output(self, x: Tensor, emb: Tensor, n_frames: int) -> Tensor:
        """Final adaLN + linear head: tokens (B, T*P, dim) -> prediction (B, C, T, h, w)."""
        b, n, dim = x.shape
        shift, scale = (emb[:, :, None] + self.head_modulation).unbind(dim=2)  # (B, T, dim)
        h = self.head_norm(x).view(b, n_frames, -1, dim) * (1 + scale[:, :, None])
        h = h + shift[:, :, None]
        return self.unpatchify(self.head(h.view(b, n, dim)), n_frames)

    def _positions(self, n_frames: int, t0: int, device: torch.device) -> Tensor:
        return token_positions(n_frames, *self.grid, t0=t0, device=device)

    def _cached_table(self, key: tuple, positions: Callable[[], Tensor]) -> RopeTable:
        if key not in self._tables:
            if len(self._tables) > 256:  # many distinct shapes: start over
                self._tables.clear()
            self._tables[key] = self.rope.table(positions())
        return self._tables[key]

    def _reference_table(self, n_tokens: int, device: torch.device) -> RopeTable:
        """References: temporal L-1+offset ahead of the chunk, same spatial grid as the targets."""
        per_ref = self.grid[0] * self.grid[1]
        t_ref = self.cfg.chunk_latent_frames - 1 + self.cfg.reference_offset
        return self._cached_table(
            ("reference", n_tokens, device),
            lambda: self._positions(1, t_ref, device).repeat(max(n_tokens // per_ref, 0), 1),
        )

    # --- references ---------------------------------------------------------------------------
    def reference_kv(
        self, latents: Tensor, roles: Tensor, labels: Tensor, valid: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """References through the blocks at t=0, attending only among themselves.

        latents: (B, R, C, h, w); roles/labels: (B, R) int64; valid: None or (B, R) bool.
        Returns per layer un-roped keys and values (B, H, R*P, D) (differentiable).
        """
        b, r = latents.shape[:2]
        # R plays the frame axis: (B, R*P, in_channels*4); no front latent in reference tokens
        x = self.input_tokens(latents.permute(0, 2, 1, 3, 4))
        per_ref = x.shape[1] // r
        x = self.embed(x, r)
        x = (x.view(b, r, per_ref, -1) + self.reference_embed(roles, labels)[:, :, None]).flatten(
            1, 2
        )
        _, mod = self.time_modulation(torch.zeros(b, r, device=x.device))
        table = self._reference_table(r * per_ref, x.device)
        bias = None
        if valid is not None and not bool(valid.all()):
            key_valid = valid.repeat_interleave(per_ref, dim=1)  # (B, R*P)
            bias = torch.zeros(key_valid.shape, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(~key_valid, float("-inf"))[:, None, None, :]
            # A row with no valid reference attends to itself, so no softmax sees only -inf.
            bias = torch.where(valid.any(dim=1)[:, None, None, None], bias, 0.0)
        keys: list[Tensor] = []
        values: list[Tensor] = []

        def self_attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            keys.append(k)
            values.append(v)
            return attend(apply_rope(q, table), apply_rope(k, table), v, bias)

        for block in self.blocks:
            x = block(x, mod, self_attend)
        return keys, values

    @staticmethod
    def _conditioned_block(
        block: nn.Module,
        x: Tensor,
        mod: Tensor,
        self_attend,
        cond,
        text: Tensor,
        text_bias: Tensor | None,
        text_keep: Tensor | None,
    ) -> Tensor:
        """One DiT block with its audio track: even layers read SPEAK, odd layers LISTEN."""
        speak = block.audio_track == SPEAK
        audio = cond.speak if speak else cond.listen
        return block(
            x,
            mod,
            self_attend,
            text=text,
            text_bias=text_bias,
            audio=audio.to(x.dtype),
            text_keep=text_keep,
            audio_keep=cond.speak_keep if speak else cond.listen_keep,
        )

    @torch.no_grad()
    def encode_references(self, latents: Tensor, roles: Tensor, labels: Tensor) -> ReferenceCache:
        """One character's references (R, C, h, w) -> its ReferenceCache (computed once)."""
        keys, values = self.reference_kv(latents[None], roles[None], labels[None])
        front = None
        if self.reference_concat:
            front = front_reference(latents[None], roles[None], labels[None])[0].contiguous()
        return ReferenceCache(
            keys=tuple(k[0].contiguous() for k in keys),
            values=tuple(v[0].contiguous() for v in values),
            n_references=latents.shape[0],
            tokens_per_reference=self.grid[0] * self.grid[1],
            front=front,
        )

    # --- streaming ----------------------------------------------------------------------------
    def forward_chunk(
        self,
        x_t: Tensor,
        t: Tensor,
        refs: ReferenceBatch | None,
        cond: Conditioning,
        history: HistoryBatch | None = None,
        *,
        write_history: bool = False,
        predict: bool = True,
    ) -> Tensor | None:
        """One chunk. x_t: (B, C, L, h, w); t: (B, L); cond audio: (B, L, A, audio_dim).

        `write_history` writes this pass's current-chunk K/V to the ring scratch (the caller commits
        after the noisy-history pass). Returns the raw prediction (B, C, L, h, w) (see `to_x0`),
        or None with `predict=False` (with `write_history` only: the noisy-history pass, whose
        prediction nobody reads, so its last block stops once its K/V are written).
        """
        if not predict and not (write_history and history is not None):
            raise ValueError("predict=False is only for a pass that writes the history ring")
        b, _, n_frames = x_t.shape[:3]
        device = x_t.device
        tokens = self.input_tokens(x_t, self._streaming_front(refs), cond.refs_keep)
        x = self.embed(tokens, n_frames)  # (B, N, dim)
        emb, mod = self.time_modulation(t)
        text, text_bias, text_keep = self.text_context(cond)
        keys = self._streaming_keys(refs, history, cond.refs_keep, b, device)

        last = self.n_layers - 1
        for i, block in enumerate(self.blocks):
            if i == last and not predict:
                history.write(i, *block.self_attention_kv(x, mod))
                return None

            def self_attend(q: Tensor, k: Tensor, v: Tensor, i: int = i) -> Tensor:
                if write_history and history is not None:
                    history.write(i, k, v)
                return attend_streaming(q, k, v, keys, i)

            x = self._conditioned_block(
                block, x, mod, self_attend, cond, text, text_bias, text_keep
            )
        return self.output(x, emb, n_frames)

    def _streaming_rope(self, device: torch.device) -> StreamingRope:
        """Per-axis rope rows of the streaming step (references, ring slots, chunk), per device."""
        if device not in self._streaming_ropes:
            self._streaming_ropes[device] = StreamingRope.build(
                self.rope,
                self.grid,
                self.cfg.chunk_latent_frames,
                self.cfg.reference_offset,
                self.cfg.history_chunks,
                device,
            )
        return self._streaming_ropes[device]

    def _streaming_keys(
        self,
        refs: ReferenceBatch | None,
        history: HistoryBatch | None,
        refs_keep: Tensor | None,
        batch: int,
        device: torch.device,
    ) -> StreamingKeys:
        """Where this step's reference and ring K/V live, for every layer; attention reads them
        in place (no stacking, roping or concatenation here)."""
        with_refs = refs is not None and refs.tokens > 0
        with_history = history is not None and history.tokens > 0
        references: dict = {}
        if with_refs and isinstance(refs, ReferenceBatch):  # per character, read in place
            references = {
                "reference_keys": [c.keys for c in refs.caches],
                "reference_values": [c.values for c in refs.caches],
                "reference_keep": refs_keep,
                "prepared_references": refs.prepared,  # torch path: references roped once a step
            }
        elif with_refs:  # self-rollout training: per layer (B, H, Kr, D) + a validity bias
            bias = refs.key_bias()
            layers = [refs.keys_values(i) for i in range(self.n_layers)]
            references = {
                "batched_reference_keys": [k for k, _ in layers],
                "batched_reference_values": [v for _, v in layers],
                "reference_keep": refs_keep,
                "prepared_references": refs.prepared,  # torch path: references roped once a step
                "reference_mask": None if bias is None else bias[:, 0, 0] == 0,
            }
        prepared_context = None
        if with_history and (not with_refs or isinstance(refs, ReferenceBatch)):
            # Inference: [references | ring] are the same in every pass of a step (not in
            # self-rollout training, whose references carry a graph).
            def prepared_context(layer: int, prepare: Callable) -> tuple[Tensor, Tensor]:
                return history.prepared(layer, refs if with_refs else None, prepare)

        return StreamingKeys.build(
            self._streaming_rope(device),
            batch,
            **references,
            prepared_context=prepared_context,
            history_keys=[r.keys for r in history.rings] if with_history else (),
            history_values=[r.values for r in history.rings] if with_history else (),
            history_slots=[r.length for r in history.rings] if with_history else None,
            chunks_back=history.chunks_back() if with_history else None,
        )


class Backbone(DiT):
    """The causal backbone (and, with `mode="bidirectional"`, the Base LPM teacher)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg, cfg.n_layers, reference_concat=cfg.reference_concat)

    def forward_train(
        self,
        x_t: Tensor,
        t: Tensor,
        refs: tuple[Tensor, Tensor, Tensor, Tensor | None] | None,
        cond: Conditioning,
        mode: str = "causal",
    ) -> Tensor:
        """A whole clip in one pass.

        x_t: (B, C, T, h, w) with T a multiple of chunk_latent_frames; t: (B, T) per latent frame
        (diffusion forcing); refs: None or (latents (B, R, C, h, w), roles (B, R), labels (B, R),
        valid (B, R) bool or None; with `reference_concat` the front one also enters the input,
        `input_tokens`); cond audio: (B, T, A, audio_dim). Returns the raw prediction.
        mode: "causal" (block-causal + window = history_chunks, equals streaming chunk by chunk)
        or "bidirectional" (teacher).
        """
        if mode not in ("causal", "bidirectional"):
            raise ValueError(f"mode must be 'causal' or 'bidirectional', got {mode!r}")
        b, _, n_frames = x_t.shape[:3]
        chunk = self.cfg.chunk_latent_frames
        if n_frames % chunk:
            raise ValueError(f"x_t has {n_frames} latent frames; must be a multiple of {chunk}")
        device = x_t.device
        front = None
        if refs is not None and self.reference_concat:
            front = front_reference(*refs)
        x = self.embed(self.input_tokens(x_t, front, cond.refs_keep), n_frames)  # (B, N, dim)
        emb, mod = self.time_modulation(t)
        text, text_bias, text_keep = self.text_context(cond)
        absolute = self.rope.table(self._positions(n_frames, 0, device))
        local_pos = self._positions(n_frames, 0, device)
        local_pos[:, 0] = local_pos[:, 0] % chunk  # queries as seen by references
        local = self.rope.table(local_pos)
        allowed = context_mask(
            n_frames,
            chunk,
            self.grid[0] * self.grid[1],
            self.cfg.history_chunks,
            causal=mode == "causal",
            device=device,
        )
        ref_keys: list[Tensor] = []
        ref_values: list[Tensor] = []
        ref_bias = None
        ref_table = None
        if refs is not None:
            latents, roles, labels, valid = refs
            ref_keys, ref_values = self.reference_kv(latents, roles, labels, valid)
            ref_table = self._reference_table(ref_keys[0].shape[2], device)
            per_ref = self.grid[0] * self.grid[1]
            key_valid = torch.ones(b, ref_keys[0].shape[2], dtype=torch.bool, device=device)
            if valid is not None:
                key_valid = valid.repeat_interleave(per_ref, dim=1)
            if cond.refs_keep is not None:
                key_valid = key_valid & (cond.refs_keep[:, None] != 0)
            if not bool(key_valid.all()):
                ref_bias = torch.zeros(key_valid.shape, dtype=x.dtype, device=device)
                ref_bias = ref_bias.masked_fill(~key_valid, float("-inf"))[:, None, None, :]

        for i, block in enumerate(self.blocks):

            def self_attend(q: Tensor, k: Tensor, v: Tensor, i: int = i) -> Tensor:
                if ref_keys:
                    rk = apply_rope(ref_keys[i], ref_table)
                    rv = ref_values[i]
                else:
                    rk = rv = q.new_zeros(q.shape[0], q.shape[1], 0, q.shape[3])
                return attend_split(
                    apply_rope(q, local),
                    rk,
                    rv,
                    ref_bias,
                    apply_rope(q, absolute),
                    apply_rope(k, absolute),
                    v,
                    allowed,
                )

            x = self._conditioned_block(
                block, x, mod, self_attend, cond, text, text_bias, text_keep
            )
        return self.output(x, emb, n_frames)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
