"""Engine side of sessions without gRPC: track buffers, pacing, batching, barge-in, idle.

A stand-in generator (records every step) keeps these fast and exact; the server tests use the
real StreamingGenerator.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from lpm_npc.config import SAMPLES_PER_FRAME, ServeConfig
from lpm_npc.engine.pacing import NS_PER_SAMPLE, ChunkOutlook, Due, chunk_due
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import (
    LISTEN,
    SPEAK,
    EngineSession,
    FrameOut,
    PlaybackFinishedOut,
    PlaybackStartedOut,
)
from lpm_npc.engine.track_buffer import AudioOrderError, AudioOverflowError, TrackBuffer

SPC = 4 * SAMPLES_PER_FRAME  # samples per chunk
CHUNK_NS = SPC * NS_PER_SAMPLE


@dataclass
class _Frames:
    frames: np.ndarray


class RecordingGenerator:
    """Frames whose pixel value is 255 * max |speak| of the chunk; records batch sizes."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.prompts: list[str] = []

    def feed(self, state, speak=None, listen=None):
        state["speak"], state["listen"] = speak, listen

    def step(self, states, *, pad=False):
        self.steps.append(len(states))
        out = []
        for s in states:
            level = int(255 * float(np.abs(s["speak"]).max()))
            out.append(_Frames(np.full((4, 8, 8, 3), level, np.uint8)))
        return out

    def set_prompt(self, state, prompt):
        self.prompts.append(prompt)


class FakeClock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now

    def advance_chunks(self, n: float) -> None:
        self.now += int(n * CHUNK_NS)


def _session(name: str, clock: FakeClock, config: ServeConfig, sheddable=True) -> EngineSession:
    s = EngineSession(
        name, {}, samples_per_chunk=SPC, frames_per_chunk=4, config=config, sheddable=sheddable
    )
    s.attach(clock())
    return s


def _drain(session: EngineSession) -> list:
    events = list(session.outbox)
    session.outbox.clear()
    return events


def test_track_buffer_positions_gaps_late_and_order() -> None:
    track = TrackBuffer(max_samples=10_000)
    assert track.append(np.ones(100, np.float32), 50, arrived_ns=1).gap == 50
    assert track.end == 150
    with pytest.raises(AudioOrderError, match="overlaps"):
        track.append(np.ones(10, np.float32), 140, arrived_ns=2)
    taken = track.take(120)
    assert taken.received == 120 and taken.pcm[:50].sum() == 0 and taken.pcm[50:].sum() == 70
    late = track.append(np.ones(40, np.float32), None, arrived_ns=3)  # right after 150
    assert late.late == 0 and track.end == 190
    r = TrackBuffer(1000)
    r.take(500)
    result = r.append(np.ones(100, np.float32), 450, arrived_ns=4)
    assert (result.late, result.accepted, result.first_sample) == (50, 50, 500)
    with pytest.raises(AudioOverflowError):
        r.append(np.ones(2000, np.float32), None, arrived_ns=5)
    assert r.drop() == 50 and r.end == r.start == 500
    r.append(np.ones(10, np.float32), 500, arrived_ns=6)  # after a drop, order restarts


def test_pacing_rules() -> None:
    cfg = ServeConfig()
    base = dict(chunk_end_ns=1000 * CHUNK_NS, chunk_ns=CHUNK_NS, sheddable=True)
    idle = ChunkOutlook(has_audio=False, open_tracks_covered=True, any_track_open=False, **base)
    assert chunk_due(idle, 1000 * CHUNK_NS - 1, cfg) is Due.WAIT
    assert chunk_due(idle, 1000 * CHUNK_NS, cfg) is Due.DEADLINE
    assert chunk_due(idle, 1002 * CHUNK_NS, cfg) is Due.SHED
    priority = ChunkOutlook(
        has_audio=False,
        open_tracks_covered=True,
        any_track_open=False,
        chunk_end_ns=base["chunk_end_ns"],
        chunk_ns=CHUNK_NS,
        sheddable=False,
    )
    assert chunk_due(priority, 1002 * CHUNK_NS, cfg) is Due.DEADLINE
    speech = ChunkOutlook(has_audio=True, open_tracks_covered=True, any_track_open=True, **base)
    assert chunk_due(speech, 997 * CHUNK_NS, cfg) is Due.WAIT  # more than 2 chunks ahead
    assert chunk_due(speech, 998 * CHUNK_NS, cfg) is Due.AUDIO
    assert chunk_due(speech, 1005 * CHUNK_NS, cfg) is Due.AUDIO  # speech is never shed
    waiting = ChunkOutlook(has_audio=True, open_tracks_covered=False, any_track_open=True, **base)
    assert chunk_due(waiting, 1000 * CHUNK_NS, cfg) is Due.WAIT  # grace for the open track
    assert chunk_due(waiting, int(1000.5 * CHUNK_NS), cfg) is Due.DEADLINE


def test_sessions_due_together_share_one_step() -> None:
    clock, gen, cfg = FakeClock(), RecordingGenerator(), ServeConfig()
    sched = Scheduler(gen, cfg, samples_per_chunk=SPC, clock=clock)
    a, b = _session("a", clock, cfg), _session("b", clock, cfg)
    sched.add(a), sched.add(b)
    for s in (a, b):
        s.feed(SPEAK, np.full(SPC, 0.5, np.float32), 0, clock())
        s.feed(LISTEN, np.zeros(SPC, np.float32), 0, clock())
    assert sched.step() and gen.steps == [2]  # one generator call served both
    frames = [e for e in _drain(a) if isinstance(e, FrameOut)]
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert [f.pts_samples for f in frames] == [0, 666, 1332, 1998]
    assert frames[0].image.max() == 127 and frames[0].speaking and not frames[0].idle
    sched.config = ServeConfig(max_batch=1)
    for s in (a, b):
        s.feed(SPEAK, np.full(SPC, 0.5, np.float32), SPC, clock())
    assert not sched.step()  # the open listen track has not covered chunk 1 yet: wait for it
    for s in (a, b):
        s.end_segment(LISTEN)
    assert sched.step() and sched.step() and gen.steps == [2, 1, 1]


def test_idle_sessions_never_freeze_and_late_idle_is_shed() -> None:
    clock, gen, cfg = FakeClock(), RecordingGenerator(), ServeConfig()
    sched = Scheduler(gen, cfg, samples_per_chunk=SPC, clock=clock)
    idle = _session("idle", clock, cfg)
    hero = _session("hero", clock, cfg, sheddable=False)
    sched.add(idle), sched.add(hero)
    assert not sched.step()  # nothing is due before real time reaches the chunk's end
    for _ in range(3):
        clock.advance_chunks(1)
        assert sched.step()
    assert idle.counters.chunks == 3 and hero.counters.chunks == 3
    assert all(e.idle for e in _drain(idle) if isinstance(e, FrameOut))
    clock.advance_chunks(5)  # the daemon stalled: idle chunks are now late
    sched.step()
    assert idle.counters.dropped_chunks >= 3 and hero.counters.dropped_chunks == 0


def test_barge_in_answers_within_one_chunk_and_drops_speech() -> None:
    clock, gen, cfg = FakeClock(), RecordingGenerator(), ServeConfig(max_lead_chunks=100)
    sched = Scheduler(gen, cfg, samples_per_chunk=SPC, clock=clock)
    s = _session("s", clock, cfg)
    sched.add(s)
    s.feed(SPEAK, np.full(10 * SPC, 0.8, np.float32), 0, clock())
    s.end_segment(SPEAK)
    sched.step()
    events = _drain(s)
    assert isinstance(events[0], PlaybackStartedOut) and events[0].segment == 1
    # interrupt while a chunk is being generated: answered right after that chunk's frames
    batch = sched.schedule(clock())
    s.interrupt()
    assert not s.outbox
    sched.postprocess(sched.run(batch))
    events = _drain(s)
    assert isinstance(events[-1], PlaybackFinishedOut) and events[-1].interrupted
    assert events[-1].segment == 1 and events[-1].pts_samples == 2 * SPC
    assert s.tracks[SPEAK].buffered == 0
    clock.advance_chunks(3)
    sched.step()
    frames = [e for e in _drain(s) if isinstance(e, FrameOut)]
    assert frames and all(f.image.max() == 0 and not f.speaking for f in frames)
    s.interrupt()  # nothing playing: still answered, at once, with segment 0
    (answer,) = _drain(s)
    assert answer == PlaybackFinishedOut(0, s.next_sample, interrupted=True)


def test_segment_playback_events_and_prompt() -> None:
    clock, gen, cfg = FakeClock(), RecordingGenerator(), ServeConfig(max_lead_chunks=100)
    sched = Scheduler(gen, cfg, samples_per_chunk=SPC, clock=clock)
    s = _session("s", clock, cfg)
    sched.add(s)
    s.feed(SPEAK, np.full(SPC + 100, 0.5, np.float32), SPC // 2, clock())
    s.end_segment(SPEAK)
    s.set_prompt("cheerful")
    while sched.step():
        pass
    kinds = [type(e).__name__ for e in _drain(s)]
    assert kinds.index("PlaybackStartedOut") < kinds.index("FrameOut")
    assert kinds[-1] in ("PlaybackFinishedOut", "StatusOut")
    assert gen.prompts == ["cheerful"]


def test_load_monitor_degrades_and_recovers_with_hysteresis() -> None:
    from lpm_npc.engine.pacing import LoadMonitor

    monitor = LoadMonitor(ServeConfig(), CHUNK_NS)
    monitor.record_step(compute_ns=CHUNK_NS // 4, chunks=1, max_lateness_ns=0)
    assert monitor.snapshot().rtf == pytest.approx(0.25) and not monitor.snapshot().degraded
    for _ in range(10):
        monitor.record_step(compute_ns=3 * CHUNK_NS, chunks=1, max_lateness_ns=5 * CHUNK_NS)
    snap = monitor.snapshot()
    assert snap.degraded and "late" in snap.reason and snap.rtf > 1
    monitor.record_step(compute_ns=CHUNK_NS // 4, chunks=1, max_lateness_ns=0)
    assert monitor.snapshot().degraded  # one good step is not enough (hysteresis)
    for _ in range(20):
        monitor.record_step(compute_ns=CHUNK_NS // 4, chunks=1, max_lateness_ns=0)
    assert not monitor.snapshot().degraded
