"""Pacing on the audio clock, and the daemon's load monitor (its degradation policy).

Each session has a `MediaClock` mapping its sample clock to the monotonic wall clock: sample s
is due at `origin_ns + s * 62_500` (16 kHz). `chunk_due` decides whether a session's next chunk
should be generated now:

- **by audio**: some track has audio in the chunk and every *open* track (one with a segment in
  progress, e.g. a streaming microphone) covers the whole chunk — but never more than
  `max_lead_chunks` ahead of real time, so audio sent faster than real time waits in the buffer;
- **by deadline**: the wall clock passed the chunk's end (plus `late_grace_chunks` when a track
  is open and may still be delivering); missing audio is silence. This is what keeps an idle
  session alive: with no audio it still gets a chunk per chunk of real time.

`LoadMonitor` measures the real-time factor (compute time / media time generated, summed over
sessions) and the lateness of due chunks. Degradation policy (docs/api.md): a due chunk later
than `shed_lag_chunks` is skipped if it is pure idle and its session's idle policy allows; when
the smoothed lateness exceeds `degrade_lag_chunks` the daemon reports `degraded` and refuses new
sessions until it falls below `recover_lag_chunks`; and (when `drop_lag_chunks` > 0) a chunk of
any kind (speech too, any idle policy) later than `drop_lag_chunks` is skipped, so latency stays bounded under sustained
overload instead of growing without end.

This module computes; it does not sleep, hold sessions or call the generator.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from lpm_npc.config import SAMPLE_RATE, ServeConfig

NS_PER_SAMPLE = 1_000_000_000 // SAMPLE_RATE  # 62_500 ns: exact, so clock maths stays integer


class Due(Enum):
    """Why (or whether) a chunk is generated now."""

    WAIT = "wait"  # not yet
    AUDIO = "audio"  # its audio is complete
    DEADLINE = "deadline"  # real time reached its end; missing audio is silence
    SHED = "shed"  # pure idle and too late: skip it (degradation)


@dataclass
class MediaClock:
    """Sample clock of one session on the monotonic wall clock (nanoseconds)."""

    origin_ns: int  # monotonic time of sample 0

    def time_of(self, sample: int) -> int:
        return self.origin_ns + sample * NS_PER_SAMPLE

    def resume(self, sample: int, now_ns: int) -> None:
        """Re-anchor so that `sample` is due now (a stream re-attached after a pause)."""
        self.origin_ns = now_ns - sample * NS_PER_SAMPLE


@dataclass(frozen=True)
class ChunkOutlook:
    """What the scheduler knows about a session's next chunk when deciding."""

    chunk_end_ns: int  # wall time of the chunk's last sample on the session clock
    chunk_ns: int  # duration of one chunk
    has_audio: bool  # some track has buffered samples inside the chunk
    open_tracks_covered: bool  # every open track's audio reaches the chunk's end
    any_track_open: bool  # some track has a segment in progress
    sheddable: bool  # the session's idle policy lets idle chunks be skipped


def chunk_due(outlook: ChunkOutlook, now_ns: int, config: ServeConfig) -> Due:
    """Decide about one session's next chunk (see the module docstring)."""
    grace = int(config.late_grace_chunks * outlook.chunk_ns) if outlook.any_track_open else 0
    deadline = outlook.chunk_end_ns + grace
    drop_after = config.drop_lag_chunks * outlook.chunk_ns
    if drop_after and now_ns - outlook.chunk_end_ns > drop_after:
        return Due.SHED  # the latency bound: too late to be worth showing, whatever it holds
    if outlook.has_audio and outlook.open_tracks_covered:
        earliest = outlook.chunk_end_ns - config.max_lead_chunks * outlook.chunk_ns
        return Due.AUDIO if now_ns >= earliest else Due.WAIT
    if now_ns < deadline:
        return Due.WAIT
    idle = not outlook.has_audio
    if idle and outlook.sheddable and now_ns - deadline > config.shed_lag_chunks * outlook.chunk_ns:
        return Due.SHED
    return Due.DEADLINE


@dataclass(frozen=True)
class LoadSnapshot:
    """The daemon's load as reported in Status events and metrics."""

    rtf: float  # compute time / media time generated, over the window (all sessions summed)
    lag_ms: float  # smoothed lateness of due chunks
    degraded: bool
    reason: str  # why degraded ("" when not)


class LoadMonitor:
    """Real-time factor over a sliding window and smoothed lateness with hysteresis."""

    def __init__(self, config: ServeConfig, chunk_ns: int, window_steps: int = 32) -> None:
        self._config = config
        self._chunk_ns = chunk_ns
        self._steps: deque[tuple[int, int]] = deque(maxlen=window_steps)  # (compute, media) ns
        self._lag_ns = 0.0
        self._degraded = False

    def record_step(self, compute_ns: int, chunks: int, max_lateness_ns: int) -> None:
        """One generator step made `chunks` chunks; the latest was `max_lateness_ns` past due."""
        self._steps.append((compute_ns, chunks * self._chunk_ns))
        # Smoothing over a few steps so one slow step (a GC pause) does not flip the state.
        self._lag_ns = 0.7 * self._lag_ns + 0.3 * max(0, max_lateness_ns)
        if self._lag_ns > self._config.degrade_lag_chunks * self._chunk_ns:
            self._degraded = True
        elif self._lag_ns < self._config.recover_lag_chunks * self._chunk_ns:
            self._degraded = False

    def record_idle(self) -> None:
        """The daemon has no session, so nothing can be late: lateness and `degraded` clear.

        Without this a daemon that degraded and then lost its sessions would stay degraded (and
        refuse every session) for good, since only generator steps update the lateness."""
        self._lag_ns = 0.0
        self._degraded = False

    def snapshot(self) -> LoadSnapshot:
        compute = sum(c for c, _ in self._steps)
        media = sum(m for _, m in self._steps)
        rtf = compute / media if media else 0.0
        reason = ""
        if self._degraded:
            reason = (
                f"chunks are {self._lag_ns / 1e6:.0f} ms late (limit "
                f"{self._config.degrade_lag_chunks * self._chunk_ns / 1e6:.0f} ms); rtf {rtf:.2f}"
            )
        return LoadSnapshot(
            rtf=rtf, lag_ms=self._lag_ns / 1e6, degraded=self._degraded, reason=reason
        )
