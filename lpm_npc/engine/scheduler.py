"""The scheduler: every session with a chunk due goes into one batched generator step.

`Scheduler.step()` is the whole engine loop in three calls::

    batch = self.schedule(now)       # pacing: which sessions have a chunk due; take their audio
    result = self.run(batch)         # one generator.step over all of them (a worker thread)
    self.postprocess(result)         # frames and playback events into each session's outbox

`schedule` asks each session's pacing (`engine/pacing.py`) whether its next chunk is due and
takes exactly that chunk's audio from the session's tracks (`ChunkInput`); `run` hands every due
session's `ChunkAudio` to one `generator.step` (pending prompt changes are applied first, on the
same thread); `postprocess` gives each session its `ChunkFrames` (pts computed once, by the
generator, from the audio's clock position, so a shed chunk leaves a gap in both seq and pts).

`serve_forever()` runs that loop on an asyncio event loop, with `run` in a single worker thread
so the loop keeps receiving audio while the model computes. Every generator call (open, prepare,
set_prompt, close, via `run` or `call_in_worker`) goes through that one thread, so the generator
is never used from two threads at once. The clock is injected (`clock=`), so tests drive the
whole loop with a fake clock and a fake `ChunkGenerator`.

The scheduler does not decode audio bytes, deliver frames or know about gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from lpm_npc.config import ServeConfig
from lpm_npc.engine.events import StatusOut, StreamEndOut
from lpm_npc.engine.pacing import NS_PER_SAMPLE, Due, LoadMonitor, LoadSnapshot, chunk_due
from lpm_npc.engine.protocol import ChunkFrames, ChunkGenerator
from lpm_npc.engine.session import LISTEN, SPEAK, ChunkInput, EngineSession

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Sessions whose next chunk is generated together, with that chunk's inputs."""

    sessions: tuple[EngineSession, ...]
    inputs: tuple[ChunkInput, ...]
    prompts: tuple[str | None, ...]  # a prompt change to apply before this chunk, per session


@dataclass(frozen=True)
class StepResult:
    batch: Batch
    frames: list[ChunkFrames] | None  # per session; None when the step failed
    started_ns: int  # monotonic
    finished_ns: int
    error: str = ""


@dataclass
class SchedulerStats:
    steps: int = 0  # generator.step calls
    chunks: int = 0  # chunks generated (sum of batch sizes)
    shed_chunks: int = 0  # idle chunks skipped under load


class Scheduler:
    """Batches due chunks of all sessions into generator steps (see the module docstring)."""

    def __init__(
        self,
        generator: ChunkGenerator,
        config: ServeConfig,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.generator = generator
        self.config = config
        self.samples_per_chunk = generator.cfg.samples_per_chunk
        self.chunk_ns = self.samples_per_chunk * NS_PER_SAMPLE
        self.clock = clock
        self.sessions: dict[str, EngineSession] = {}
        self.load = LoadMonitor(config, self.chunk_ns)
        self.stats = SchedulerStats()
        self.queue_depth = 0  # sessions found due at the last schedule
        self.on_step: Callable[[StepResult], None] = lambda result: None  # metrics hook
        # trace hook: session id -> recorder (`lpm_npc.trace.recorder.SessionRecorder`) that is
        # told every chunk it generated (with its batch) and every chunk it shed
        self.recorders: dict[str, Any] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lpm-generator")
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # --- sessions --------------------------------------------------------------------------
    def add(self, session: EngineSession) -> None:
        self.sessions[session.session_id] = session
        self.wake()

    def remove(self, session_id: str) -> EngineSession | None:
        return self.sessions.pop(session_id, None)

    def status_for(self, session: EngineSession) -> StatusOut:
        return StatusOut(
            load=self.load.snapshot(),
            queue_depth=self.queue_depth,
            sessions=len(self.sessions),
            dropped_chunks=session.counters.dropped_chunks,
            late_samples=session.counters.late_samples,
            speak_buffered=session.tracks[SPEAK].buffered,
            listen_buffered=session.tracks[LISTEN].buffered,
            draining=self._stopping,
        )

    def snapshot(self) -> LoadSnapshot:
        self._clear_load_if_idle()
        return self.load.snapshot()

    def _clear_load_if_idle(self) -> None:
        # With no session nothing is generated, so only this can end a degraded period.
        if not self.sessions:
            self.load.record_idle()

    # --- the three phases ------------------------------------------------------------------
    def schedule(self, now_ns: int) -> Batch | None:
        """Pick every attached session with a chunk due (most overdue first, up to max_batch),
        take their chunk inputs and apply pending prompts. Sheds late idle chunks."""
        due: list[tuple[int, EngineSession]] = []
        for session in self.sessions.values():
            if not session.attached or session.in_flight:
                continue
            if session.is_drained():
                session.detach()
                session.outbox.append(StreamEndOut())
                session.notify()
                continue
            decision = chunk_due(session.outlook(), now_ns, self.config)
            while decision is Due.SHED:
                if session.session_id in self.recorders:
                    self.recorders[session.session_id].record_shed(session.next_sample)
                session.skip_chunk()
                self.stats.shed_chunks += 1
                decision = chunk_due(session.outlook(), now_ns, self.config)
            if decision is not Due.WAIT:
                due.append((session.outlook().chunk_end_ns, session))
        self.queue_depth = len(due)
        if not due:
            self._clear_load_if_idle()
            return None
        due.sort(key=lambda item: item[0])
        limit = self.config.max_batch or len(due)
        chosen = [session for _, session in due[:limit]]
        prompts = []
        for session in chosen:
            prompts.append(session.pending_prompt)
            session.pending_prompt = None
        inputs = tuple(session.take_chunk(now_ns) for session in chosen)
        return Batch(sessions=tuple(chosen), inputs=inputs, prompts=tuple(prompts))

    def run(self, batch: Batch) -> StepResult:
        """Prompt changes, then one batched generator step (runs in the worker thread)."""
        started = self.clock()
        states = [session.state for session in batch.sessions]
        try:
            for state, prompt in zip(states, batch.prompts, strict=True):
                if prompt is not None:
                    self.generator.set_prompt(state, prompt)
            frames = self.generator.step(states, [chunk.audio for chunk in batch.inputs])
        except Exception as error:  # noqa: BLE001 - reported to the sessions, loop keeps going
            log.exception("generator step failed for %d sessions", len(batch.sessions))
            return StepResult(
                batch, None, started, self.clock(), error=f"generation failed: {error}"
            )
        return StepResult(batch, frames, started, self.clock())

    def postprocess(self, result: StepResult) -> None:
        """Record load, then queue each session's events."""
        batch = result.batch
        compute = result.finished_ns - result.started_ns
        self.stats.steps += 1
        self.stats.chunks += len(batch.sessions)
        self.load.record_step(
            compute, len(batch.sessions), max(c.lateness_ns for c in batch.inputs)
        )
        for i, (session, chunk) in enumerate(zip(batch.sessions, batch.inputs, strict=True)):
            if result.frames is None:
                session.fail_chunk(result.error)
                continue
            session.complete_chunk(chunk, result.frames[i], lambda s=session: self.status_for(s))
            if session.session_id in self.recorders:
                self.recorders[session.session_id].record_step(result, i)
        self.on_step(result)

    def step(self) -> bool:
        """Synchronous loop body (tests, benchmarks): returns whether a chunk was generated."""
        batch = self.schedule(self.clock())
        if batch is None:
            return False
        self.postprocess(self.run(batch))
        return True

    # --- timing ----------------------------------------------------------------------------
    def seconds_until_due(self, now_ns: int) -> float:
        """Upper bound on the time until some attached session may have a chunk due."""
        waits = []
        for session in self.sessions.values():
            if not session.attached or session.in_flight:
                continue
            outlook = session.outlook()
            if outlook.has_audio and outlook.open_tracks_covered:
                waits.append(outlook.chunk_end_ns - self.config.max_lead_chunks * self.chunk_ns)
            else:
                grace = (
                    self.config.late_grace_chunks * self.chunk_ns if outlook.any_track_open else 0
                )
                waits.append(outlook.chunk_end_ns + grace)
        if not waits:
            return 0.5
        return min(0.5, max(0.0005, (min(waits) - now_ns) / 1e9))

    # --- the asyncio loop ------------------------------------------------------------------
    def wake(self) -> None:
        """Re-evaluate now (new audio, new session); call from the event-loop thread."""
        if self._wake is not None:
            self._wake.set()

    async def call_in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a generator call (open, prepare, close) on the generator's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        while not self._stopping:
            batch = self.schedule(self.clock())
            if batch is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=self.seconds_until_due(self.clock())
                    )
                except asyncio.TimeoutError:
                    pass
                continue
            result = await loop.run_in_executor(self._executor, self.run, batch)
            self.postprocess(result)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
