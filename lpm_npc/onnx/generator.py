"""OnnxStreamingGenerator: the streaming generator with every per-chunk pass in onnxruntime.

A `engine.protocol.ChunkGenerator` (`cfg`, `prepare`, `open`, `step(states, audio)`,
`set_prompt`, `close`) with the semantics of `engine.generator.StreamingGenerator`, so the
scheduler, sessions and delivery do not change. Per step, for the B given sessions: one audio call
(speak and listen rows of every session in one batch of 2B) -> `backbone_steps` backbone calls
with commit=False -> one refiner call -> one backbone call with commit=True on the chunk's x0
re-noised to `context_noise` (it writes the ring) -> one decoder call -> uint8 frames at each
session's size, pts from `frame_pts`. Every call batches all B sessions; rows never mix, so a
session's frames do not depend on its batch-mates (up to float rounding). Each session draws its
noise from its own torch.Generator exactly as the torch backend does, so both backends see the
same noise and their frames agree (docs/onnx.md states the PSNR).

Once-per-character and once-per-prompt work stays in torch on the same LPM: `prepare` (VAE encode
of the references + their K/V, `StreamingGenerator.prepare`) and the text encoder. The session
state (`OnnxSessionState`) holds every cache as numpy arrays in the graphs' layouts
(`wrappers.py`): the history ring, both audio caches, the decode cache, the stacked references.

A model with `ModelConfig.reference_concat` is refused (`wrappers.require_exportable`).

The generator holds no audio and knows nothing of gRPC, pacing or scheduling policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lpm_npc.config import ModelConfig
from lpm_npc.engine.generator import MAX_SIZE, MIN_SIZE, StreamingGenerator
from lpm_npc.engine.protocol import ChunkAudio, ChunkFrames, PreparedCharacter, frame_pts
from lpm_npc.model.caches import ReferenceCache
from lpm_npc.model.flow import sampling_timesteps
from lpm_npc.onnx.manifest import Manifest, weights_digest
from lpm_npc.onnx.runtime import OrtOptions, load_graphs
from lpm_npc.onnx.wrappers import require_exportable

log = logging.getLogger(__name__)

SPEAK_TRACK, LISTEN_TRACK = 0, 1  # AudioEncoder track ids


@dataclass
class OnnxSessionState:
    """One session's model state; an opaque handle for callers (as `SessionState`).

    Arrays carry a leading batch axis of 1 in the graphs' layouts (`wrappers.py`).
    """

    character: PreparedCharacter
    prompt: str
    size: int  # output frame side, px
    noise: torch.Generator  # this session's own noise stream (same draws as the torch backend)
    text: np.ndarray  # (1, Lt, text_dim) float32
    text_mask: np.ndarray  # (1, Lt) bool
    backbone_refs: tuple[np.ndarray, np.ndarray]  # keys, values (1, n_layers, H, Kr, D)
    refiner_refs: tuple[np.ndarray, np.ndarray]  # keys, values (1, refiner_layers, H, Kr, D)
    history_keys: np.ndarray  # (1, n_layers, H, S*P, D) un-roped ring
    history_values: np.ndarray
    history_next: np.ndarray  # (1,) int64 slot the next commit writes
    history_length: np.ndarray  # (1,) int64 valid slots
    speak_cache: list[np.ndarray]  # audio encoder state of the SPEAK track, per graph input
    listen_cache: list[np.ndarray]
    decode_cache: list[np.ndarray]
    closed: bool = False


@dataclass(frozen=True)
class _ChunkBatch:
    """What `_schedule` hands `_run`: the sessions of one step and their batched inputs."""

    states: Sequence[OnnxSessionState]
    audio: Sequence[ChunkAudio]
    conditioning: dict[str, np.ndarray]  # text, text_mask, speak, listen (B rows)
    noise: tuple[np.ndarray, np.ndarray, np.ndarray]  # initial, refiner, context (B, C, L, h, w)
    started_ns: int


def _stack_references(cache: ReferenceCache) -> tuple[np.ndarray, np.ndarray]:
    keys = torch.stack(list(cache.keys))[None].float().contiguous().numpy()
    values = torch.stack(list(cache.values))[None].float().contiguous().numpy()
    return keys, values


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _row(batch: np.ndarray, row: int, rows: int) -> np.ndarray:
    """Row `row` of a graph output as a (1, ...) array the session owns: a copy when the batch
    holds other sessions too, so no session keeps its batch-mates' state alive."""
    return batch if rows == 1 else batch[row : row + 1].copy()


def _pad_tokens(arrays: list[np.ndarray], axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows padded with zeros (False) to the longest along `axis` -> (batch, length per row)."""
    lengths = np.array([a.shape[axis] for a in arrays], dtype=np.int64)
    width = int(lengths.max())
    padded = []
    for a in arrays:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, width - a.shape[axis])
        padded.append(np.pad(a, pad) if width > a.shape[axis] else a)
    return _concat(padded), lengths


class OnnxStreamingGenerator:
    """Streaming generation through onnxruntime graphs; see the module docstring."""

    def __init__(
        self,
        cfg: ModelConfig,
        model,
        export_dir: str | Path,
        *,
        options: OrtOptions = OrtOptions(),
        check_weights: bool = True,
    ) -> None:
        """model: the fp32 CPU LPM the graphs were exported from, for references and prompts.

        With `check_weights`, its `weights_digest` must equal the manifest's: graphs and a torch
        model from different checkpoints would give characters references of another model.
        """
        require_exportable(cfg)
        manifest = Manifest.read(export_dir)
        if manifest.model != cfg.name:
            raise ValueError(
                f"export {export_dir} is of model {manifest.model!r}, not {cfg.name!r}"
            )
        if check_weights:
            digest = weights_digest(model)
            if digest != manifest.weights_sha256:
                raise ValueError(
                    f"export {export_dir}: weights {manifest.weights_sha256[:12]} differ "
                    f"from the model's {digest[:12]} (export again from this checkpoint)"
                )
        self.cfg = cfg
        self.model = model.eval()
        self.manifest, self.graphs = load_graphs(export_dir, options)
        self._torch = StreamingGenerator(cfg, model)  # prepare(): once per character
        self.levels = sampling_timesteps(cfg.backbone_steps, cfg.flow_shift).tolist()
        self.providers = self.graphs["backbone"].providers
        self._n_audio_cache = len(model.audio_encoder.init_cache(1).slots)

    @classmethod
    def from_export(
        cls,
        export_dir: str | Path,
        checkpoint: str | Path | None = None,
        *,
        options: OrtOptions = OrtOptions(),
        **load_args,
    ) -> OnnxStreamingGenerator:
        """Graphs from `export_dir`, the torch model from `load_lpm(checkpoint, **load_args)`."""
        from lpm_npc.engine.weights import load_lpm

        cfg, model = load_lpm(checkpoint, **load_args)
        return cls(cfg, model, export_dir, options=options)

    # --- characters (torch, once per character) ---------------------------------------------------
    def prepare(
        self, images: np.ndarray, roles: Sequence[tuple[str, str]], *, name: str = ""
    ) -> PreparedCharacter:
        """uint8 (R, S, S, 3) images with one (role, label) each -> their reference K/V."""
        return self._torch.prepare(images, roles, name=name)

    # --- sessions ---------------------------------------------------------------------------------
    def open(
        self,
        character: PreparedCharacter,
        *,
        prompt: str = "",
        seed: int = 0,
        size: int | None = None,
    ) -> OnnxSessionState:
        """A new session of a prepared character."""
        cfg = self.cfg
        if character.model_name != cfg.name:
            raise ValueError(
                f"character: prepared for model {character.model_name!r}, this is {cfg.name!r}"
            )
        size = cfg.image_size if size is None else int(size)
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        noise = torch.Generator(device="cpu")
        noise.manual_seed(seed)
        text, mask = self._encode_text(prompt)
        slots = max(cfg.history_chunks, 1)  # the graph needs one slot; it stays invalid at 0
        ring = (1, cfg.n_layers, cfg.n_heads, slots * cfg.tokens_per_chunk, cfg.head_dim)
        audio = self.model.audio_encoder

        def zeros(cache) -> list[np.ndarray]:
            return [slot.float().numpy() for slot in cache.slots]

        return OnnxSessionState(
            character=character,
            prompt=prompt,
            size=size,
            noise=noise,
            text=text,
            text_mask=mask,
            backbone_refs=_stack_references(character.backbone_refs),
            refiner_refs=_stack_references(character.refiner_refs),
            history_keys=np.zeros(ring, np.float32),
            history_values=np.zeros(ring, np.float32),
            history_next=np.zeros(1, np.int64),
            history_length=np.zeros(1, np.int64),
            speak_cache=zeros(audio.init_cache(1, device="cpu")),
            listen_cache=zeros(audio.init_cache(1, device="cpu")),
            decode_cache=zeros(self.model.vae.init_decode_cache(1, device="cpu")),
        )

    def set_prompt(self, state: OnnxSessionState, prompt: str) -> None:
        """Change the style/emotion prompt from the next chunk on (references stay valid)."""
        self._check_open(state)
        state.text, state.text_mask = self._encode_text(prompt)
        state.prompt = prompt

    def close(self, state: OnnxSessionState) -> None:
        """Mark the session closed (its state must not be stepped again)."""
        state.closed = True

    # --- the step: schedule -> run -> postprocess -------------------------------------------------
    def step(
        self, states: Sequence[OnnxSessionState], audio: Sequence[ChunkAudio]
    ) -> list[ChunkFrames]:
        """One chunk for every given session, batched (see the module docstring)."""
        batch = self._schedule(states, audio)
        latents = self._run(batch)
        return self._postprocess(batch, latents)

    def _schedule(
        self, states: Sequence[OnnxSessionState], audio: Sequence[ChunkAudio]
    ) -> _ChunkBatch:
        if not states:
            raise ValueError("step: states must hold at least one session")
        if len(audio) != len(states):
            raise ValueError(f"step: {len(audio)} audio chunks for {len(states)} sessions")
        if len({id(s) for s in states}) != len(states):
            raise ValueError("step: a session appears twice in states")
        started = time.monotonic_ns()
        cfg = self.cfg
        n = cfg.samples_per_chunk
        for i, (state, chunk) in enumerate(zip(states, audio)):
            self._check_open(state)
            for name, pcm in (("speak", chunk.speak), ("listen", chunk.listen)):
                if pcm.shape != (n,) or pcm.dtype != np.float32:
                    raise ValueError(
                        f"audio[{i}].{name}: expected float32 ({n},), got {pcm.dtype} {pcm.shape}"
                    )
        shape = (3, cfg.latent_channels, cfg.chunk_latent_frames) + (cfg.latent_size,) * 2
        # Drawn exactly as the torch backend draws it: one (3, ...) tensor per session.
        noise = np.stack([torch.randn(shape, generator=s.noise).numpy() for s in states])
        speak_tokens, listen_tokens = self._encode_audio(states, audio)
        text, _ = _pad_tokens([s.text for s in states], axis=1)
        mask, _ = _pad_tokens([s.text_mask for s in states], axis=1)  # padding is False
        conditioning = {
            "text": text,
            "text_mask": mask,
            "speak": speak_tokens,
            "listen": listen_tokens,
        }
        parts = tuple(np.ascontiguousarray(noise[:, i]) for i in range(3))
        return _ChunkBatch(states, audio, conditioning, parts, started)

    def _encode_audio(
        self, states: Sequence[OnnxSessionState], audio: Sequence[ChunkAudio]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both tracks of every session in one audio call (rows [speak_0.., listen_0..]);
        advances each session's audio caches."""
        b = len(states)
        caches = [s.speak_cache for s in states] + [s.listen_cache for s in states]
        feeds = {
            "pcm": np.stack([c.speak for c in audio] + [c.listen for c in audio]),
            "track": np.array([SPEAK_TRACK] * b + [LISTEN_TRACK] * b, dtype=np.int64),
        }
        for i in range(self._n_audio_cache):
            feeds[f"audio_cache_{i}"] = np.concatenate([c[i] for c in caches])
        out = self.graphs["audio"].run(feeds)
        caches_out = [out[f"audio_cache_{i}_out"] for i in range(self._n_audio_cache)]
        for row, state in enumerate(states):
            state.speak_cache = [_row(c, row, 2 * b) for c in caches_out]
            state.listen_cache = [_row(c, b + row, 2 * b) for c in caches_out]
        return out["tokens"][:b], out["tokens"][b:]

    def _run(self, batch: _ChunkBatch) -> np.ndarray:
        """Backbone denoising, refiner, noisy-history commit -> refined x0 (B, C, L, h, w)."""
        cfg = self.cfg
        states = batch.states
        b, frames = len(states), cfg.chunk_latent_frames
        ref_keys, ref_length = _pad_tokens([s.backbone_refs[0] for s in states], axis=3)
        ref_values, _ = _pad_tokens([s.backbone_refs[1] for s in states], axis=3)
        feeds = {
            **batch.conditioning,
            "reference_keys": ref_keys,
            "reference_values": ref_values,
            "reference_length": ref_length,
            "history_keys": _concat([s.history_keys for s in states]),
            "history_values": _concat([s.history_values for s in states]),
            "history_next": _concat([s.history_next for s in states]),
            "history_length": _concat([s.history_length for s in states]),
            "commit": np.array(False),
        }
        backbone = self.graphs["backbone"]
        x = x0 = batch.noise[0]
        for level, next_level in zip(self.levels[:-1], self.levels[1:]):
            t = np.full((b, frames), level, np.float32)
            prediction = backbone.run({**feeds, "x_t": x, "t": t})["prediction"]
            x0 = self._to_x0(prediction, x, t)
            # Euler step of the flow ODE in x0 form (flow.euler_step_x0); lands on x0 at 0.
            x = x0 + np.float32(next_level / level) * (x - x0)
        refined = self._refine(batch, x0)
        # Noisy history: the chunk's x0 re-noised to context_noise; only this pass is committed.
        level = np.float32(cfg.context_noise)
        context = (np.float32(1.0) - level) * x0 + level * batch.noise[2]
        t = np.full((b, frames), level, np.float32)
        commit = np.array(cfg.history_chunks > 0)  # no ring: its one slot never becomes valid
        out = backbone.run({**feeds, "x_t": context, "t": t, "commit": commit})
        for row, state in enumerate(states):
            state.history_keys = _row(out["history_keys_out"], row, b)
            state.history_values = _row(out["history_values_out"], row, b)
            state.history_next = _row(out["history_next_out"], row, b)
            state.history_length = _row(out["history_length_out"], row, b)
        return refined

    def _refine(self, batch: _ChunkBatch, x0: np.ndarray) -> np.ndarray:
        states = batch.states
        ref_keys, ref_length = _pad_tokens([s.refiner_refs[0] for s in states], axis=3)
        ref_values, _ = _pad_tokens([s.refiner_refs[1] for s in states], axis=3)
        feeds = {
            **batch.conditioning,
            "x0": x0,
            "noise": batch.noise[1],
            "reference_keys": ref_keys,
            "reference_values": ref_values,
            "reference_length": ref_length,
        }
        return self.graphs["refiner"].run(feeds)["refined"]

    def _postprocess(self, batch: _ChunkBatch, latents: np.ndarray) -> list[ChunkFrames]:
        """Decode every row in one call -> uint8 frames at each session's size, with pts."""
        states = batch.states
        n_cache = len(states[0].decode_cache)
        feeds = {"latents": latents}
        for i in range(n_cache):
            feeds[f"decode_cache_{i}"] = _concat([s.decode_cache[i] for s in states])
        out = self.graphs["decoder"].run(feeds)
        for row, state in enumerate(states):
            state.decode_cache = [
                _row(out[f"decode_cache_{i}_out"], row, len(states)) for i in range(n_cache)
            ]
        images = [frames_to_uint8(out["video"][row], s.size) for row, s in enumerate(states)]
        finished = time.monotonic_ns()
        return [
            ChunkFrames(
                chunk.chunk_index,
                pixels,
                frame_pts(chunk.start_sample, len(pixels)),
                batch.started_ns,
                finished,
            )
            for pixels, chunk in zip(images, batch.audio)
        ]

    # --- helpers ----------------------------------------------------------------------------------
    def _to_x0(self, prediction: np.ndarray, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        """`backbone.to_x0` in numpy: the graph returns the raw prediction."""
        if self.cfg.prediction == "x0":
            return prediction
        return x_t - t[:, None, :, None, None] * prediction

    @torch.inference_mode()
    def _encode_text(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        text, mask = self.model.text_encoder.encode_prompts([prompt], device="cpu")
        return text.float().numpy(), mask.numpy()

    @staticmethod
    def _check_open(state: OnnxSessionState) -> None:
        if state.closed:
            raise ValueError("session is closed")


def frames_to_uint8(video: np.ndarray, size: int) -> np.ndarray:
    """(3, N, H, W) in [-1, 1] -> uint8 (N, size, size, 3), resized as the torch backend does."""
    frames = torch.from_numpy(np.ascontiguousarray(video)).clamp(-1, 1).permute(1, 0, 2, 3)
    if frames.shape[-1] != size or frames.shape[-2] != size:
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True)
    frames = ((frames + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 1).contiguous().numpy()
