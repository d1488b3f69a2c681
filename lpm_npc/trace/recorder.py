"""Recording one session's trace from the live engine.

`SessionRecorder` is what `Scheduler.recorders[session_id]` holds: the scheduler calls
`record_step(result, row)` after each generated chunk of the session (on the event-loop thread,
after the frames went into the outbox) and `record_shed(start_sample)` for each chunk it sheds;
the serving layer calls `record_event(kind, ...)` for interrupts, segment ends and prompt changes
as it applies them, and `close(reason)` when the session ends.

What a chunk record holds is what replay needs to make the generator consume exactly the same
inputs: the chunk's PCM of both tracks as `take_chunk` cut it (padding and barge-in are already
applied), the prompt change applied right before it, and the batch it ran in (size, this
session's row, every row's reference count and history-ring fill) — a batched step is not bit-identical to the same
session stepped alone on CPU (docs/trace-format.md, "Batch invariance"), so replay rebuilds the
batch shape with filler rows.

`make_header(...)` builds the header map (model, checkpoint sha256, character with its reference
images, session config, platform, versions). The recorder does not decide what to record: every
chunk of the session is written. It knows nothing of gRPC.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lpm_npc.config import SAMPLES_PER_FRAME, ModelConfig
from lpm_npc.digest import file_sha256
from lpm_npc.trace.format import TraceWriter, frame_digest, pcm_bytes, png_bytes

log = logging.getLogger(__name__)

THUMB_SIZE = 32  # px side of the per-frame thumbnails (compare's contact sheets); 0 = none


def checkpoint_sha256(checkpoint_dir: str | Path | None) -> str:
    """sha256 (hex) of a checkpoint's `model.safetensors`; "" for random weights (None)."""
    if checkpoint_dir is None:
        return ""
    return file_sha256(Path(checkpoint_dir) / "model.safetensors")


def _versions() -> dict[str, str]:
    import msgpack
    import torch

    from lpm_npc import __version__

    return {
        "lpm_npc": str(__version__),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "msgpack": ".".join(map(str, msgpack.version)),
        "python": sys.version.split()[0],
    }


def platform_info() -> dict[str, str]:
    """What "the same platform" means for bit-exact replay (compared by `trace replay`)."""
    import torch

    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": str(torch.get_num_threads()),
    }


def make_header(
    cfg: ModelConfig,
    *,
    checkpoint_sha: str,
    character_id: str,
    character_version: str,
    sheet_sha256: str,
    images: np.ndarray,
    roles: Sequence[tuple[str, str]],
    size: int,
    seed: int,
    prompt: str,
    session_id: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The header map of a new trace (docs/trace-format.md, "header").

    images: uint8 (R, S, S, 3), exactly what `generator.prepare` was given (stored as PNG, which
    is lossless, so replay prepares the same references)."""
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(roles):
        raise ValueError(
            f"images: expected uint8 (R, S, S, 3) with one role each, got {images.shape}"
        )
    return {
        "model": {
            "name": cfg.name,
            "checkpoint_sha256": checkpoint_sha,
            "frames_per_chunk": cfg.frames_per_chunk,
            "samples_per_chunk": cfg.samples_per_chunk,
            "samples_per_frame": SAMPLES_PER_FRAME,
        },
        "character": {
            "id": character_id,
            "version": str(character_version),
            "sheet_sha256": sheet_sha256,
            "roles": [[str(r), str(label)] for r, label in roles],
            "images": [png_bytes(image) for image in images],
        },
        "session": {"id": session_id, "size": int(size), "seed": int(seed), "prompt": prompt},
        "platform": platform_info(),
        "versions": _versions(),
        "created_unix_ns": time.time_ns(),
        "extra": dict(extra or {}),
    }


def _thumbnail(frame: np.ndarray, side: int) -> bytes:
    from PIL import Image

    return png_bytes(np.asarray(Image.fromarray(frame).resize((side, side), Image.BILINEAR)))


class SessionRecorder:
    """Writes one session's chunk, frame, shed and event records (see the module docstring)."""

    def __init__(self, writer: TraceWriter, *, thumb_size: int = THUMB_SIZE) -> None:
        self.writer = writer
        self.thumb_size = thumb_size
        self.chunks = 0
        self.frames = 0
        self.shed = 0
        self.closed = False

    def record_step(self, result: Any, row: int) -> None:
        """One generated chunk: `result` is the scheduler's `StepResult`, `row` this session's
        index in its batch. Writes the chunk record, then one frame record per frame."""
        if self.closed or result.frames is None:
            return
        batch = result.batch
        chunk = batch.inputs[row]
        frames = result.frames[row]
        self.writer.write(
            {
                "t": "chunk",
                "k": int(frames.chunk_index),
                "start_sample": int(chunk.audio.start_sample),
                "speak": pcm_bytes(chunk.audio.speak),
                "listen": pcm_bytes(chunk.audio.listen),
                "speaking": bool(chunk.speaking),
                "idle": bool(chunk.idle),
                "prompt": batch.prompts[row],
                "batch": {
                    "size": len(batch.sessions),
                    "row": int(row),
                    "refs": [len(s.state.character.roles) for s in batch.sessions],
                    # history ring fill of each row before the step (the commit advanced it)
                    "history": [
                        min(s.state.history.pos - 1, s.state.history.slots) for s in batch.sessions
                    ],
                },
                "lateness_ns": int(chunk.lateness_ns),
                "input_ready_ns": int(chunk.input_ready_ns),
                "started_ns": int(result.started_ns),
                "finished_ns": int(result.finished_ns),
                "wall_ns": time.time_ns(),
            }
        )
        self.chunks += 1
        n = len(frames.frames)
        for i, (image, pts) in enumerate(zip(frames.frames, frames.pts_samples, strict=True)):
            record: dict[str, Any] = {
                "t": "frame",
                "seq": int(frames.chunk_index) * n + i,
                "pts": int(pts),
                "sha256": frame_digest(image),
            }
            if self.thumb_size:
                record["thumb"] = _thumbnail(image, self.thumb_size)
            self.writer.write(record)
            self.frames += 1

    def record_shed(self, start_sample: int) -> None:
        """A chunk skipped under load (called before the session's clock moves past it)."""
        if self.closed:
            return
        self.writer.write(
            {"t": "shed", "start_sample": int(start_sample), "wall_ns": time.time_ns()}
        )
        self.shed += 1

    def record_event(self, kind: str, **detail: Any) -> None:
        """A client event applied to the session: interrupt, segment_end (track=), set_prompt
        (text=). Informational: the chunk records already hold its effect on the inputs."""
        if self.closed:
            return
        self.writer.write({"t": "event", "kind": kind, "wall_ns": time.time_ns(), **detail})

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.writer.write(
            {
                "t": "end",
                "reason": reason,
                "chunks": self.chunks,
                "frames": self.frames,
                "shed": self.shed,
                "wall_ns": time.time_ns(),
            }
        )
        self.closed = True
        self.writer.close()
