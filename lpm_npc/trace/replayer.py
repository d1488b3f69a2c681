"""Offline replay of a trace: re-run the generator on the recorded inputs and check every frame.

`replay(trace, generator, tolerance_db=None) -> ReplayResult`:
1. prepare the character from the header's reference images, open the session with the header's
   prompt, seed and size;
2. per chunk record, in order: apply its prompt change, then one `generator.step` whose batch has
   the recorded shape — the session at its recorded row, and filler rows (a session of the same
   character cut to that row's reference count, its history ring filled to that row's recorded
   fill, fed silence) everywhere else. A batched step on
   CPU is not bit-identical to the same session stepped alone (matmul blocking depends on the
   batch size), but a row's result does not depend on what the other rows hold (measured:
   docs/trace-format.md), so fillers reproduce it bit-exactly;
3. compare each frame's sha256 to the trace's frame record of the same seq (bit-exact mode), or
   with `tolerance_db` the PSNR of the frame's thumbnail against the recorded thumbnail (another
   platform: a frame passes at PSNR >= tolerance_db).

Shed chunks are not stepped (the live generator never saw them). Replay runs as fast as the
generator goes; it never sleeps. It uses the recorded torch thread count (bit-exactness on CPU
depends on it). `on_frame(seq, frame, ok)` sees every replayed frame (the
Traces service streams them; `trace export` writes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpm_npc.engine.protocol import ChunkAudio, PreparedCharacter
from lpm_npc.trace.format import Trace, frame_digest, pcm_from_bytes, png_image

FrameCallback = Callable[[int, np.ndarray, bool], None]


@dataclass
class ReplayResult:
    """The outcome of a replay; `as_json()` is what `trace replay --json` prints."""

    frames: int = 0  # frames compared
    mismatches: int = 0
    first_mismatch: int | None = None  # seq of the first differing frame
    missing: list[int] = field(default_factory=list)  # seqs in the trace that replay never made
    min_psnr_db: float | None = None  # tolerance mode only

    def as_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch,
        }

    def _fail(self, seq: int) -> None:
        self.mismatches += 1
        if self.first_mismatch is None or seq < self.first_mismatch:
            self.first_mismatch = seq


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images of one shape (inf when equal)."""
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(255.0**2 / err))


def prepare_character(trace: Trace, generator: Any) -> tuple[PreparedCharacter, np.ndarray, list]:
    """The trace's character prepared on `generator`, with its images (R, S, S, 3) and roles."""
    character = trace.header["character"]
    images = np.stack([png_image(data) for data in character["images"]])
    roles = [(str(role), str(label)) for role, label in character["roles"]]
    return generator.prepare(images, roles, name=str(character["id"])), images, roles


class _Fillers:
    """Filler sessions keyed by (reference count, history fill): a row's frames depend on its
    batch's shape (size, every row's reference count and history length pads the attention),
    never on what the other rows hold, so fillers are fed silence."""

    def __init__(self, generator: Any, images: np.ndarray, roles: list, size: int) -> None:
        self.generator, self.images, self.roles, self.size = generator, images, roles, size
        self.prepared: dict[int, PreparedCharacter] = {}
        self.pool: dict[tuple[int, int], list[Any]] = {}

    def _silence(self, start_sample: int) -> ChunkAudio:
        n = self.generator.cfg.samples_per_chunk
        return ChunkAudio(start_sample, np.zeros(n, np.float32), np.zeros(n, np.float32))

    def take(self, refs: int, fill: int, start_sample: int) -> Any:
        """A filler whose ring holds `fill` chunks (made by stepping a new one alone)."""
        free = self.pool.get((refs, fill))
        if free:
            return free.pop()
        if refs not in self.prepared:
            count = max(1, min(refs, len(self.roles)))
            self.prepared[refs] = self.generator.prepare(
                self.images[:count], self.roles[:count], name="filler"
            )
        state = self.generator.open(self.prepared[refs], seed=0, size=self.size)
        while state.history.length < fill:
            self.generator.step([state], [self._silence(start_sample)])
        return state

    def give_back(self, refs: int, state: Any) -> None:
        self.pool.setdefault((refs, state.history.length), []).append(state)


def replay(
    trace: Trace,
    generator: Any,
    *,
    tolerance_db: float | None = None,
    on_frame: FrameCallback | None = None,
) -> ReplayResult:
    """Re-run `trace` on `generator` (a `StreamingGenerator`); see the module docstring.

    Runs with the recorded torch intra-op thread count (CPU reductions split by thread, so the
    count is part of "the same platform"), restored afterwards."""
    import torch

    recorded = trace.header.get("platform", {}).get("torch_threads")
    previous = torch.get_num_threads()
    if recorded:
        torch.set_num_threads(int(recorded))
    try:
        return _replay(trace, generator, tolerance_db, on_frame)
    finally:
        torch.set_num_threads(previous)


def _replay(
    trace: Trace,
    generator: Any,
    tolerance_db: float | None,
    on_frame: FrameCallback | None,
) -> ReplayResult:
    header = trace.header
    model = header["model"]
    if int(model["samples_per_chunk"]) != generator.cfg.samples_per_chunk:
        raise ValueError(
            f"trace: samples_per_chunk {model['samples_per_chunk']} but the model has "
            f"{generator.cfg.samples_per_chunk}; replay needs a model of the same chunk shape"
        )
    session = header["session"]
    character, images, roles = prepare_character(trace, generator)
    size = int(session["size"])
    state = generator.open(
        character, prompt=str(session["prompt"]), seed=int(session["seed"]), size=size
    )
    fillers = _Fillers(generator, images, roles, size)
    expected = {int(f["seq"]): f for f in trace.frames}
    result = ReplayResult()
    seen: set[int] = set()
    for chunk in trace.chunks:
        if chunk["prompt"] is not None:
            generator.set_prompt(state, str(chunk["prompt"]))
        audio = ChunkAudio(
            int(chunk["start_sample"]),
            pcm_from_bytes(chunk["speak"]),
            pcm_from_bytes(chunk["listen"]),
        )
        batch = chunk["batch"]
        row = int(batch["row"])
        states, audios, used = [], [], []
        fills = batch.get("history") or [0] * len(batch["refs"])
        for j, (refs, fill) in enumerate(zip(batch["refs"], fills, strict=True)):
            if j == row:
                states.append(state)
                audios.append(audio)
            else:
                filler = fillers.take(int(refs), int(fill), audio.start_sample)
                used.append((int(refs), filler))
                states.append(filler)
                audios.append(fillers._silence(audio.start_sample))
        out = generator.step(states, audios)[row]
        for refs, filler in used:
            fillers.give_back(refs, filler)
        for i, frame in enumerate(out.frames):
            seq = int(out.chunk_index) * len(out.frames) + i
            record = expected.get(seq)
            if record is None:
                continue
            seen.add(seq)
            result.frames += 1
            if tolerance_db is None:
                ok = frame_digest(frame) == bytes(record["sha256"])
            else:
                ok = _within_tolerance(frame, record, tolerance_db, result)
            if not ok:
                result._fail(seq)
            if on_frame is not None:
                on_frame(seq, frame, ok)
    for seq in sorted(set(expected) - seen):
        result.missing.append(seq)
        result.frames += 1
        result._fail(seq)
    return result


def _within_tolerance(
    frame: np.ndarray, record: dict[str, Any], tolerance_db: float, result: ReplayResult
) -> bool:
    if frame_digest(frame) == bytes(record["sha256"]):
        return True
    thumb = record.get("thumb")
    if thumb is None:
        return False  # no thumbnail recorded: only the digest can be compared
    from PIL import Image

    recorded = png_image(thumb)
    side = recorded.shape[0]
    mine = np.asarray(Image.fromarray(frame).resize((side, side), Image.BILINEAR))
    value = psnr_db(mine, recorded)
    result.min_psnr_db = value if result.min_psnr_db is None else min(result.min_psnr_db, value)
    return value >= tolerance_db
