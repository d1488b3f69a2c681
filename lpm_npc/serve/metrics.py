"""Prometheus metrics of the daemon, served over HTTP (`--metrics-port`).

Exported (all prefixed `lpm_npc_`): `sessions` (open), `queue_depth` (sessions with a chunk due
at the last schedule), `rtf` (compute / media time, window), `degraded` (0/1), `fps` (frames
generated per second over the last 5 s, all sessions), `frames_total`, `shed_chunks_total`,
`step_seconds` and `step_batch_size` histograms, and `frame_latency_seconds` (from the chunk's
inputs being complete to the frame being delivered: written to the SHM ring or encoded INLINE).

Each daemon has its own `CollectorRegistry`, so several daemons (tests) can live in one process.
This module only records numbers; it does not decide anything.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lpm_npc.engine.scheduler import StepResult

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0)
_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0)
_FPS_WINDOW_S = 5.0


class DaemonMetrics:
    """The daemon's Prometheus collectors and the optional HTTP exporter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("lpm_npc_sessions", "open sessions", registry=r)
        self.capacity = Gauge(
            "lpm_npc_capacity_sessions",
            "sessions admitted at most: measured at start (or max_sessions when not measured)",
            registry=r,
        )
        self.queue_depth = Gauge("lpm_npc_queue_depth", "sessions with a chunk due", registry=r)
        self.rtf = Gauge("lpm_npc_rtf", "compute time / media time generated", registry=r)
        self.degraded = Gauge("lpm_npc_degraded", "1 when real time is not kept", registry=r)
        self.fps = Gauge("lpm_npc_fps", "frames generated per second, all sessions", registry=r)
        self.frames = Counter("lpm_npc_frames", "frames generated", registry=r)
        self.shed = Counter("lpm_npc_shed_chunks", "idle chunks skipped under load", registry=r)
        self.step_seconds = Histogram(
            "lpm_npc_step_seconds", "batched generator step time", buckets=_STEP_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "lpm_npc_step_batch_size",
            "sessions per generator step",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=r,
        )
        self.frame_latency = Histogram(
            "lpm_npc_frame_latency_seconds",
            "inputs complete -> frame delivered",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._recent: deque[tuple[float, int]] = deque()
        self._http = None
        self._shed_seen = 0

    def record_step(self, result: StepResult, *, sessions: int, queue_depth: int, load, shed: int):
        """Called after every generator step with the scheduler's state."""
        frames = sum(len(chunk.frames) for chunk in result.frames or [])
        now = time.monotonic()
        self._recent.append((now, frames))
        while self._recent and now - self._recent[0][0] > _FPS_WINDOW_S:
            self._recent.popleft()
        span = max(1e-3, min(_FPS_WINDOW_S, now - self._recent[0][0])) if self._recent else 1.0
        self.fps.set(sum(n for _, n in self._recent) / span if len(self._recent) > 1 else 0.0)
        self.frames.inc(frames)
        self.step_seconds.observe((result.finished_ns - result.started_ns) / 1e9)
        self.batch_size.observe(len(result.batch.sessions))
        self.sessions.set(sessions)
        self.queue_depth.set(queue_depth)
        self.rtf.set(load.rtf)
        self.degraded.set(1.0 if load.degraded else 0.0)
        if shed > self._shed_seen:
            self.shed.inc(shed - self._shed_seen)
            self._shed_seen = shed

    def observe_frame_latency(self, seconds: float) -> None:
        self.frame_latency.observe(max(0.0, seconds))

    def start_http(self, host: str, port: int) -> int:
        """Serve /metrics; return the bound port (port 0 picks a free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
