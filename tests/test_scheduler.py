"""The scheduler and engine sessions with a fake generator and a fake clock: exact, no threads.

`FakeGenerator` implements `ChunkGenerator`: each frame's pixel value is 255 * max |speak| of its
chunk, and it records every step (which sessions, which audio). The clock only moves when a test
moves it, so every assertion about batching and pacing is deterministic.
"""

import numpy as np
import pytest

from lpm_npc.config import ModelConfig, ServeConfig
from lpm_npc.engine.events import FrameOut, PlaybackFinishedOut, PlaybackStartedOut, StreamEndOut
from lpm_npc.engine.pacing import NS_PER_SAMPLE
from lpm_npc.engine.protocol import ChunkAudio, ChunkFrames, frame_pts
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import LISTEN, SPEAK, EngineSession

CFG = ModelConfig.from_name("test-tiny")
SPC = CFG.samples_per_chunk
FPC = CFG.frames_per_chunk
CHUNK_NS = SPC * NS_PER_SAMPLE


class FakeGenerator:
    """A `ChunkGenerator` that computes nothing: frames show the chunk's loudest SPEAK sample."""

    cfg = CFG

    def __init__(self, fail: bool = False) -> None:
        self.steps: list[list[tuple[str, int]]] = []  # per step: (session name, chunk index)
        self.prompts: list[tuple[str, str]] = []
        self.fail = fail

    def open(self, character, *, prompt="", seed=0, size=None):  # noqa: ANN001
        return {"name": character}

    def step(self, states, audio: list[ChunkAudio]) -> list[ChunkFrames]:
        if self.fail:
            raise RuntimeError("out of memory")
        self.steps.append([(s["name"], a.chunk_index) for s, a in zip(states, audio)])
        out = []
        for chunk in audio:
            level = int(255 * float(np.abs(chunk.speak).max()))
            frames = np.full((FPC, 8, 8, 3), level, np.uint8)
            pts = frame_pts(chunk.start_sample, FPC)
            out.append(ChunkFrames(chunk.chunk_index, frames, pts, 0, 1))
        return out

    def set_prompt(self, state, prompt: str) -> None:  # noqa: ANN001
        self.prompts.append((state["name"], prompt))


class FakeClock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now

    def advance_chunks(self, n: float) -> None:
        self.now += int(n * CHUNK_NS)


def _session(sched: Scheduler, name: str, sheddable: bool = True) -> EngineSession:
    state = sched.generator.open(name)
    s = EngineSession(
        name,
        state,
        samples_per_chunk=SPC,
        frames_per_chunk=FPC,
        config=sched.config,
        sheddable=sheddable,
    )
    s.attach(sched.clock())
    sched.add(s)
    return s


def _setup(config: ServeConfig = ServeConfig(), fail: bool = False):
    clock, gen = FakeClock(), FakeGenerator(fail)
    return clock, gen, Scheduler(gen, config, clock=clock)


def _drain(session: EngineSession) -> list:
    events = list(session.outbox)
    session.outbox.clear()
    return events


def _frames(session: EngineSession) -> list[FrameOut]:
    return [e for e in _drain(session) if isinstance(e, FrameOut)]


def test_every_session_with_a_chunk_due_shares_one_step() -> None:
    clock, gen, sched = _setup()
    sessions = [_session(sched, name) for name in "abcd"]
    for s in sessions[:3]:  # three have speech for chunk 0; d has nothing yet
        s.feed(SPEAK, np.full(SPC, 0.5, np.float32), 0, clock())
        s.feed(LISTEN, np.zeros(SPC, np.float32), 0, clock())
        s.end_segment(SPEAK), s.end_segment(LISTEN)  # no open track: no grace below
    assert sched.step() and gen.steps == [[("a", 0), ("b", 0), ("c", 0)]]
    assert not sched.step()  # d's idle chunk is not due before real time reaches its end
    clock.advance_chunks(2)
    # Real time reached the end of chunk 1: d's idle chunk 0 and a-c's chunk 1 (silence, by
    # deadline) are due: all four in one step, most overdue first, each at its own clock place.
    assert sched.step() and gen.steps[-1] == [("d", 0), ("a", 1), ("b", 1), ("c", 1)]
    assert sched.step() and gen.steps[-1] == [("d", 1)]
    assert not sched.step()
    for s in sessions[:3]:
        frames = _frames(s)
        assert [f.seq for f in frames] == list(range(2 * FPC))
        assert [f.pts_samples for f in frames] == [f.seq * 666 for f in frames]
        assert frames[0].image.max() == 127 and frames[0].speaking and not frames[0].idle
        assert frames[-1].idle and not frames[-1].speaking
    assert sched.stats.steps == 3 and sched.stats.chunks == 8


def test_max_batch_splits_the_due_sessions_most_overdue_first() -> None:
    clock, gen, sched = _setup(ServeConfig(max_batch=2))
    _session(sched, "late")
    clock.advance_chunks(0.5)
    _session(sched, "a"), _session(sched, "b")
    clock.advance_chunks(1)  # late's chunk 0 ended half a chunk earlier than a's and b's
    assert sched.step() and sched.step() and not sched.step()
    assert gen.steps == [[("late", 0), ("a", 0)], [("b", 0)]]


def test_an_open_track_waits_for_its_audio_then_its_grace() -> None:
    clock, gen, sched = _setup()
    s = _session(sched, "s")
    s.feed(SPEAK, np.full(SPC, 0.5, np.float32), 0, clock())
    s.feed(LISTEN, np.zeros(SPC // 2, np.float32), 0, clock())  # the microphone is streaming
    assert not sched.step()  # the open listen track has not covered chunk 0 yet
    clock.advance_chunks(1)
    assert not sched.step()  # past the chunk's end, but within the open track's grace
    clock.advance_chunks(0.5)
    assert sched.step() and gen.steps == [[("s", 0)]]


def test_shed_idle_chunks_leave_the_same_gap_in_seq_and_pts() -> None:
    clock, gen, sched = _setup()
    idle = _session(sched, "idle")
    hero = _session(sched, "hero", sheddable=False)
    for _ in range(3):
        clock.advance_chunks(1)
        assert sched.step()
    assert idle.counters.chunks == 3 and hero.counters.chunks == 3
    assert all(f.idle for f in _frames(idle))
    _drain(hero)
    clock.advance_chunks(5)  # the daemon stalled: idle chunks are now late
    assert sched.step()
    assert idle.counters.dropped_chunks >= 3 and hero.counters.dropped_chunks == 0
    (resumed,) = [chunk for name, chunk in gen.steps[-1] if name == "idle"]
    frames = _frames(idle)
    assert frames[0].chunk_index == resumed > 3
    assert [f.pts_samples for f in frames] == [f.seq * 666 for f in frames]  # one clock
    assert [f.seq for f in _frames(hero)] == list(range(3 * FPC, 4 * FPC))  # never skipped


def test_barge_in_answers_within_one_chunk_and_drops_speech() -> None:
    clock, gen, sched = _setup(ServeConfig(max_lead_chunks=100))
    s = _session(sched, "s")
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
    frames = _frames(s)
    assert frames and all(f.image.max() == 0 and not f.speaking for f in frames)
    s.interrupt()  # nothing playing: still answered, at once, with segment 0
    (answer,) = _drain(s)
    assert answer == PlaybackFinishedOut(0, s.next_sample, interrupted=True)


def test_segments_and_prompt_changes_apply_on_the_generator_thread() -> None:
    clock, gen, sched = _setup(ServeConfig(max_lead_chunks=100))
    s = _session(sched, "s")
    s.feed(SPEAK, np.full(SPC + 100, 0.5, np.float32), SPC // 2, clock())
    s.end_segment(SPEAK)
    s.set_prompt("cheerful")
    batch = sched.schedule(clock())
    assert gen.prompts == []  # schedule (the event loop) never calls the generator
    sched.postprocess(sched.run(batch))
    assert gen.prompts == [("s", "cheerful")]
    while sched.step():
        pass
    kinds = [type(e).__name__ for e in _drain(s)]
    assert kinds.index("PlaybackStartedOut") < kinds.index("FrameOut")
    assert "PlaybackFinishedOut" in kinds and gen.prompts == [("s", "cheerful")]


def test_a_failed_step_ends_the_streams_with_the_error() -> None:
    clock, gen, sched = _setup(fail=True)
    s = _session(sched, "s")
    clock.advance_chunks(1)
    assert sched.step()
    (end,) = _drain(s)
    assert isinstance(end, StreamEndOut) and "out of memory" in end.error
    assert not s.in_flight


def test_a_drained_session_ends_its_stream() -> None:
    clock, gen, sched = _setup()
    s = _session(sched, "s")
    s.feed(SPEAK, np.full(SPC, 0.5, np.float32), 0, clock())
    s.finish_input()
    assert sched.step() and len(_frames(s)) == FPC
    assert not sched.step()
    assert _drain(s)[-1] == StreamEndOut() and not s.attached


@pytest.mark.parametrize("n", [1, 3])
def test_status_reports_the_load(n: int) -> None:
    clock, gen, sched = _setup(ServeConfig(status_interval_chunks=1))
    sessions = [_session(sched, str(i)) for i in range(n)]
    clock.advance_chunks(1)
    sched.step()
    status = [e for e in _drain(sessions[0]) if type(e).__name__ == "StatusOut"][-1]
    assert status.sessions == n and status.queue_depth == n and not status.load.degraded
