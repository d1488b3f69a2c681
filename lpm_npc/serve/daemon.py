"""The daemon's domain: registry + scheduler + sessions + metrics, and their lifecycle.

A `Daemon` is what the servicers call. It owns one `Scheduler` (running on the serving event
loop, its generator calls on one worker thread), the `CharacterRegistry` over a
`CharacterStore`, the `SessionManager`, and the `DaemonMetrics`; `converse(session_id)` attaches
a `ConverseStream`. `start()` measures how many sessions the machine steps in real time (with
`config.measure_capacity`; admission then stops there, `serve/capacity.py`), launches the
scheduler loop and a reaper for sessions left without a stream; `drain()` (SIGTERM) refuses new
sessions and streams, tells every attached session to finish what it has buffered, and waits for
their streams to end up to a grace period. `status()` is what GetServerStatus reports (state,
capacity and where it came from, session counts, model). Plain Python and asyncio; no grpc.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lpm_npc import __version__
from lpm_npc.config import SAMPLE_RATE, ServeConfig, SheetLimits
from lpm_npc.engine.protocol import ChunkGenerator
from lpm_npc.engine.scheduler import Scheduler, StepResult
from lpm_npc.serve.capacity import CapacityReport, measure_capacity
from lpm_npc.serve.converse import ConverseStream
from lpm_npc.serve.metrics import DaemonMetrics
from lpm_npc.serve.registry import CharacterRegistry, ImageIn
from lpm_npc.serve.sessions import RING_PREFIX, SessionManager
from lpm_npc.serve.shm_ring import remove_orphan_rings
from lpm_npc.serve.store import CharacterStore, StoredCharacter

log = logging.getLogger(__name__)

_REAP_INTERVAL_S = 5.0


@dataclass(frozen=True)
class PrepareStep:
    """One progress event of PrepareCharacter."""

    stage: str  # "loading" | "encoding" | "done"
    fraction: float
    message: str
    character: StoredCharacter | None = None


@dataclass(frozen=True)
class DaemonStatus:
    """What the daemon can take now (GetServerStatus; the field docs are in sessions.proto)."""

    state: str  # "serving" | "degraded" | "draining"
    degraded_reason: str
    capacity_sessions: int  # measured (0: not measured, or not even one in real time)
    capacity_source: str  # "measured" | "max_sessions"
    session_limit: int
    max_sessions: int
    open_sessions: int
    active_sessions: int
    attached_sessions: int
    detached_sessions: int
    model: str
    checkpoint_sha256: str
    step_ms: tuple[float, ...]  # per batch size 1, 2, ... (empty when not measured)
    chunk_ms: float
    headroom: float
    version: str
    uptime_s: float
    rtf: float


class Daemon:
    """Everything behind the gRPC services (see the module docstring)."""

    def __init__(
        self,
        generator: ChunkGenerator,
        store_dir: str,
        *,
        config: ServeConfig = ServeConfig(),
        sheet_limits: SheetLimits = SheetLimits(),
        checkpoint_sha: str = "",
    ) -> None:
        cfg = generator.cfg
        self.checkpoint_sha = checkpoint_sha  # of the served weights ("" = random or unknown)
        self.generator = generator
        self.config = config
        self.store = CharacterStore(store_dir)
        self.registry = CharacterRegistry(self.store, sheet_limits, config.prepared_cache_size)
        self.scheduler = Scheduler(generator, config)
        self.sessions = SessionManager(
            self.scheduler,
            self.registry,
            config,
            native_size=cfg.image_size,
            frames_per_chunk=cfg.frames_per_chunk,
        )
        self.metrics = DaemonMetrics()
        self.scheduler.on_step = self._on_step
        self._tasks: list[asyncio.Task] = []
        self.capacity: CapacityReport | None = None  # measured at start (config.measure_capacity)
        self._started = time.monotonic()  # reset when start() has measured and serves

    def _on_step(self, result: StepResult) -> None:
        self.metrics.record_step(
            result,
            sessions=len(self.sessions.sessions),
            queue_depth=self.scheduler.queue_depth,
            load=self.scheduler.snapshot(),
            shed=self.scheduler.stats.shed_chunks,
        )

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Remove rings a killed daemon left, measure the capacity (when configured), then run
        the scheduler and the reaper."""
        for path in remove_orphan_rings(RING_PREFIX):
            log.info("removed the orphaned frame ring %s (its daemon died)", path)
        if self.config.measure_capacity:
            self.capacity = await self.scheduler.call_in_worker(
                lambda: measure_capacity(
                    self.generator, self.config.max_sessions, headroom=self.config.capacity_headroom
                )
            )
            if self.capacity.sessions == 0:
                # Refusing everyone helps no one: admit one, whose stream reports `degraded`.
                log.warning("this machine cannot step one session in real time; admitting 1")
            self.sessions.measured_capacity = max(1, self.capacity.sessions)
        else:
            log.info(
                "capacity not measured: admitting up to max_sessions = %d sessions",
                self.config.max_sessions,
            )
        self.metrics.capacity.set(self.sessions.session_limit)
        self._started = time.monotonic()
        self._tasks = [
            asyncio.create_task(self.scheduler.serve_forever(), name="lpm-scheduler"),
            asyncio.create_task(self._reap_forever(), name="lpm-reaper"),
        ]

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(_REAP_INTERVAL_S)
            await self.sessions.close_stale(time.monotonic_ns())

    async def drain(self, grace_s: float) -> None:
        """Stop admitting; let attached sessions finish their buffered audio (up to grace_s)."""
        self.sessions.draining = True
        attached = [s for s in self.sessions.sessions.values() if s.stream_attached]
        for session in attached:
            session.engine.finish_input()
        self.scheduler.wake()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(s.stream_attached for s in attached):
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Close every session and stop the scheduler loop."""
        for session_id in list(self.sessions.sessions):
            await self.sessions.close(session_id)
        self.scheduler.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self.scheduler.shutdown)
        self.metrics.stop_http()

    def status(self) -> DaemonStatus:
        """The daemon's state now (cheap: no generator call; call it on the event loop)."""
        sessions = list(self.sessions.sessions.values())
        load = self.scheduler.snapshot()
        if self.sessions.draining:
            state = "draining"
        elif load.degraded:
            state = "degraded"
        else:
            state = "serving"
        report = self.capacity
        cfg = self.generator.cfg
        return DaemonStatus(
            state=state,
            degraded_reason=load.reason if load.degraded else "",
            capacity_sessions=report.sessions if report else 0,
            capacity_source="measured" if report else "max_sessions",
            session_limit=self.sessions.session_limit,
            max_sessions=self.config.max_sessions,
            open_sessions=len(sessions),
            active_sessions=self.sessions.active_count,
            attached_sessions=sum(s.stream_attached for s in sessions),
            detached_sessions=sum(s.ever_attached and not s.stream_attached for s in sessions),
            model=getattr(cfg, "name", ""),
            checkpoint_sha256=self.checkpoint_sha,
            step_ms=tuple(s * 1000.0 for s in report.step_s) if report else (),
            chunk_ms=cfg.samples_per_chunk * 1000.0 / SAMPLE_RATE,
            headroom=report.headroom if report else self.config.capacity_headroom,
            version=__version__,
            uptime_s=time.monotonic() - self._started,
            rtf=load.rtf,
        )

    # --- streams ---------------------------------------------------------------------------
    def converse(self, session_id: str) -> ConverseStream:
        """Attach a Converse stream to a session (FAILED_PRECONDITION if one is attached)."""
        session = self.sessions.attach(session_id)
        return ConverseStream(session, self.sessions, self.scheduler, self.metrics, self.config)

    # --- characters ------------------------------------------------------------------------
    async def register(
        self,
        character_id: str,
        display_name: str,
        *,
        images: list[ImageIn] | None = None,
        manifest: bytes | None = None,
        files: dict[str, bytes] | None = None,
    ) -> tuple[StoredCharacter, bool]:
        # Image decoding and fsyncs take a while: keep the event loop (and streams) moving.
        return await asyncio.to_thread(
            self.registry.register,
            character_id,
            display_name,
            images=images,
            manifest=manifest,
            files=files,
        )

    async def prepare(self, ref: str) -> AsyncIterator[PrepareStep]:
        record = await asyncio.to_thread(self.registry.get, ref)
        yield PrepareStep("loading", 0.1, f"{record.character_id}@{record.version[:12]}")
        if self.registry.is_prepared(record.version):
            yield PrepareStep("done", 1.0, "cached", record)
            return
        yield PrepareStep("encoding", 0.3, f"encoding {len(record.references)} references")
        started = time.monotonic()
        await self.registry.prepared(record, self.scheduler.call_in_worker, self.generator)
        yield PrepareStep("done", 1.0, f"encoded in {time.monotonic() - started:.2f} s", record)
