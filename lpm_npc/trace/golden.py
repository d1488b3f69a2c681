"""The golden traces of `samples/traces/`, recorded through the real engine path.

`record_goldens(generator, out_dir, checkpoint_sha=)` drives the real `Scheduler` and
`EngineSession`s (a fake clock that moves one chunk per tick, so the recording is deterministic)
over the sample characters, with `SessionRecorder`s attached exactly as the daemon attaches them:

- `monologue.lpmtrace` — mira speaks 1.5 s of babble, alone in every step (batch size 1).
- `barge_in.lpmtrace` — ash speaks while tobias listens in the same batched steps (batch size 2);
  ash's prompt changes at chunk 3 and the client interrupts it at chunk 6 (the buffered rest of
  its speech is dropped, so later chunks are silence).

Regenerate them (after the default checkpoint changes) with the one command
`lpm-npc trace golden --out samples/traces` (docs/trace-format.md). Nothing here sleeps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lpm_npc.config import ServeConfig
from lpm_npc.engine.pacing import NS_PER_SAMPLE
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import SPEAK, EngineSession
from lpm_npc.trace.format import TraceWriter
from lpm_npc.trace.recorder import SessionRecorder, make_header

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
GOLDEN_NAMES = ("monologue", "barge_in")


class _TickClock:
    """Monotonic fake clock (ns) that the driver moves."""

    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


@dataclass
class _Actor:
    """One session of a golden scenario and what the client sends it."""

    name: str  # trace file stem ("" = not recorded)
    character: str  # folder under samples/characters
    prompt: str
    seed: int
    speech_seconds: float  # SPEAK babble at the start (0 = listens only)


def _sheet(character: str, size: int) -> tuple[np.ndarray, list[tuple[str, str]], str]:
    from lpm_npc.synth.sheet import load_sheet, sheet_to_array

    folder = SAMPLES_DIR / "characters" / character
    images, roles = sheet_to_array(load_sheet(folder), size)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return images, roles, digest.hexdigest()


def _scenario(
    generator: Any,
    out_dir: Path,
    actors: list[_Actor],
    *,
    chunks: int,
    checkpoint_sha: str,
    prompt_change: tuple[int, str] | None = None,
    interrupt_at: int | None = None,
) -> list[Path]:
    """Run one scenario; events (prompt change, interrupt) go to the first actor at the start
    of the given chunk. Returns the written trace paths."""
    from lpm_npc.synth.speech import babble

    cfg = generator.cfg
    config = ServeConfig()
    clock = _TickClock()
    scheduler = Scheduler(generator, config, clock=clock)
    sessions: list[EngineSession] = []
    recorders: list[SessionRecorder] = []
    paths: list[Path] = []
    for actor in actors:
        images, roles, sheet_sha = _sheet(actor.character, cfg.image_size)
        prepared = generator.prepare(images, roles, name=actor.character)
        state = generator.open(prepared, prompt=actor.prompt, seed=actor.seed)
        session = EngineSession(
            actor.name or actor.character,
            state,
            samples_per_chunk=cfg.samples_per_chunk,
            frames_per_chunk=cfg.frames_per_chunk,
            config=config,
            sheddable=False,  # every chunk generated: the goldens test generation, not shedding
        )
        session.attach(clock())
        scheduler.add(session)
        sessions.append(session)
        if actor.speech_seconds:
            speech = babble(actor.seed, actor.speech_seconds)
            session.feed(SPEAK, speech, 0, clock())
            session.end_segment(SPEAK)
        if actor.name:
            path = out_dir / f"{actor.name}.lpmtrace"
            header = make_header(
                cfg,
                checkpoint_sha=checkpoint_sha,
                character_id=actor.character,
                character_version=sheet_sha,
                sheet_sha256=sheet_sha,
                images=images,
                roles=roles,
                size=cfg.image_size,
                seed=actor.seed,
                prompt=actor.prompt,
                session_id=session.session_id,
                extra={"golden": actor.name},
            )
            recorder = SessionRecorder(TraceWriter(path, header))
            scheduler.recorders[session.session_id] = recorder
            recorders.append(recorder)
            paths.append(path)
    first, first_recorder = sessions[0], scheduler.recorders.get(sessions[0].session_id)
    chunk_ns = cfg.samples_per_chunk * NS_PER_SAMPLE
    for k in range(chunks):
        if prompt_change is not None and k == prompt_change[0]:
            first.set_prompt(prompt_change[1])
            if first_recorder is not None:
                first_recorder.record_event("set_prompt", text=prompt_change[1])
        if interrupt_at is not None and k == interrupt_at:
            first.interrupt()
            if first_recorder is not None:
                first_recorder.record_event("interrupt")
        clock.now += chunk_ns
        while scheduler.step():
            pass
        for session in sessions:
            session.outbox.clear()
    for recorder in recorders:
        recorder.close("golden complete")
    scheduler.shutdown()
    return paths


def record_goldens(generator: Any, out_dir: str | Path, *, checkpoint_sha: str) -> list[Path]:
    """Write every golden trace into `out_dir` (overwriting); returns their paths. Records on one
    torch thread, so regenerating on any machine gives the same recording conditions."""
    import torch

    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _scenario(
        generator,
        out,
        [_Actor("monologue", "mira", "calm and friendly", 11, 1.5)],
        chunks=9,
        checkpoint_sha=checkpoint_sha,
    )
    paths += _scenario(
        generator,
        out,
        [
            _Actor("barge_in", "ash", "cheerful", 21, 2.0),
            _Actor("", "tobias", "attentive", 22, 0.0),
        ],
        chunks=12,
        checkpoint_sha=checkpoint_sha,
        prompt_change=(3, "angry"),
        interrupt_at=6,
    )
    return paths
