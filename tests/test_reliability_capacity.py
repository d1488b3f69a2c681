"""Capacity measured, not guessed, and the overload policy under a fake clock.

- `measure_capacity` with a generator whose step takes a known (fake-clock) time per session;
- a daemon that measured its capacity refuses the session beyond it with RESOURCE_EXHAUSTED
  naming the measured capacity, and exports it as `lpm_npc_capacity_sessions`;
- sustained overload (every step takes three chunks of media time): idle chunks are shed so
  their lateness stays bounded; sessions that never shed (or speak) fall behind, the daemon
  reports degraded, and past `drop_lag_chunks` even speech chunks are skipped, so lateness stays
  bounded; the degraded state ends once no session is left (else it would refuse sessions
  forever).
"""

import time

import grpc
import numpy as np
import pytest

from lpm_npc.config import ModelConfig, ServeConfig
from lpm_npc.engine.pacing import NS_PER_SAMPLE
from lpm_npc.engine.protocol import ChunkAudio, ChunkFrames, frame_pts
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import SPEAK, EngineSession
from lpm_npc.serve.capacity import measure_capacity
from lpm_npc.serve.client import LpmClient
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images

CFG = ModelConfig.from_name("test-tiny")
SPC, FPC = CFG.samples_per_chunk, CFG.frames_per_chunk
CHUNK_NS = SPC * NS_PER_SAMPLE
CHUNK_S = CHUNK_NS / 1e9


def _frames(audio: list[ChunkAudio], side: int) -> list[ChunkFrames]:
    return [
        ChunkFrames(
            a.chunk_index,
            np.zeros((FPC, side, side, 3), np.uint8),
            frame_pts(a.start_sample, FPC),
            0,
            1,
        )
        for a in audio
    ]


class TimedGenerator:
    """A ChunkGenerator whose step takes `per_session_s` x batch size on a fake clock."""

    cfg = CFG

    def __init__(self, per_session_s: float) -> None:
        self.per_session_s = per_session_s
        self.now_s = 0.0
        self.open_states = 0
        self.prepared: list[str] = []

    def clock(self) -> float:
        return self.now_s

    def prepare(self, images, roles, *, name=""):  # noqa: ANN001
        assert images.dtype == np.uint8 and images.shape[0] == len(roles)
        self.prepared.append(name)
        return name

    def open(self, character, *, prompt="", seed=0, size=None):  # noqa: ANN001
        self.open_states += 1
        return {"seed": seed}

    def step(self, states, audio):  # noqa: ANN001
        assert len(states) == len(audio)
        self.now_s += self.per_session_s * len(states)
        return _frames(list(audio), 8)

    def close(self, state) -> None:  # noqa: ANN001
        self.open_states -= 1


def test_capacity_is_the_largest_batch_stepped_within_the_headroom() -> None:
    # 0.8 x 166.5 ms = 133 ms a step: 50 ms a session fits 2 sessions, not 3.
    generator = TimedGenerator(per_session_s=0.050)
    report = measure_capacity(generator, max_sessions=8, headroom=0.8, clock=generator.clock)
    assert report.sessions == 2
    assert report.step_s == pytest.approx((0.05, 0.10, 0.15))  # stopped at the first too slow
    assert report.chunk_s == pytest.approx(CHUNK_S)
    assert generator.open_states == 0 and generator.prepared == ["capacity-probe"]
    assert "measured capacity 2 sessions" in report.describe()
    fast = TimedGenerator(per_session_s=0.001)
    assert measure_capacity(fast, max_sessions=3, clock=fast.clock).sessions == 3  # capped
    slow = TimedGenerator(per_session_s=1.0)
    assert measure_capacity(slow, max_sessions=3, clock=slow.clock).sessions == 0
    with pytest.raises(ValueError, match="headroom"):
        measure_capacity(fast, max_sessions=3, headroom=1.5)


class OneFastSessionGenerator:
    """A real generator for sessions, whose capacity probe sees one session fast and two slow
    (sleeping guarantees "slow": a step of two takes at least 0.2 s > 0.8 x one chunk)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self._inner = inner
        self.cfg = inner.cfg
        self.probing = True

    def __getattr__(self, name):  # noqa: ANN001
        return getattr(self._inner, name)

    def step(self, states, audio):  # noqa: ANN001
        if not self.probing:
            return self._inner.step(states, audio)
        if len(states) > 1:
            time.sleep(0.2)
        return _frames(list(audio), self.cfg.image_size)


def test_a_daemon_refuses_sessions_beyond_its_measured_capacity(tmp_path) -> None:
    from lpm_npc.engine.generator import StreamingGenerator

    generator = OneFastSessionGenerator(
        StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny")
    )
    config = ServeConfig(max_sessions=4, measure_capacity=True, degrade_lag_chunks=1e6)
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=config) as running:
        generator.probing = False
        assert running.daemon.capacity.sessions == 1
        assert running.daemon.metrics.capacity._value.get() == 1
        with LpmClient(running.address, timeout=30) as c:
            c.register_images("ann", sheet_images(seed=1))
            c.open_session("ann")
            with pytest.raises(grpc.RpcError) as error:
                c.open_session("ann")
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "measured capacity = 1" in error.value.details()
            assert "max_sessions = 4" in error.value.details()


class OverloadedGenerator:
    """Every step takes three chunks of media time on the scheduler's fake clock."""

    cfg = CFG

    def __init__(self, clock: list[int]) -> None:
        self._clock = clock

    def open(self, character, *, prompt="", seed=0, size=None):  # noqa: ANN001
        return {}

    def set_prompt(self, state, prompt: str) -> None:  # noqa: ANN001
        pass

    def step(self, states, audio):  # noqa: ANN001
        self._clock[0] += 3 * CHUNK_NS
        return _frames(list(audio), 8)


def _overload(sheddable: bool, steps: int = 60, speech: bool = False):
    now = [10**12]
    config = ServeConfig(drop_lag_chunks=8.0)  # what `lpm-npc serve` runs with
    scheduler = Scheduler(OverloadedGenerator(now), config, clock=lambda: now[0])
    sessions = []
    for i in range(3):
        session = EngineSession(
            f"s{i}",
            {},
            samples_per_chunk=SPC,
            frames_per_chunk=FPC,
            config=config,
            sheddable=sheddable,
        )
        session.attach(now[0])
        scheduler.add(session)
        sessions.append(session)
    if speech:  # 30 s of speech buffered on session 0
        pcm = (0.2 * np.sin(np.arange(30 * 16_000) * 0.05)).astype(np.float32)
        sessions[0].feed(SPEAK, pcm, 0, now[0])
    lateness = []
    for _ in range(steps):
        now[0] += CHUNK_NS // 4  # the loop's own overhead
        batch = scheduler.schedule(now[0])
        if batch is not None:
            lateness.append(max(chunk.lateness_ns for chunk in batch.inputs))
            scheduler.postprocess(scheduler.run(batch))
    return config, scheduler, sessions, lateness


def test_sustained_overload_sheds_idle_chunks_so_lateness_stays_bounded() -> None:
    config, scheduler, sessions, lateness = _overload(sheddable=True)
    # Policy step 2: an idle chunk more than shed_lag_chunks late is skipped, so no chunk is
    # ever taken later than that bound (nothing queues up over time).
    assert max(lateness) <= config.shed_lag_chunks * CHUNK_NS
    assert all(s.counters.dropped_chunks > 10 for s in sessions)
    assert scheduler.stats.shed_chunks == sum(s.counters.dropped_chunks for s in sessions)
    assert not scheduler.snapshot().degraded


def test_overload_without_shedding_degrades_then_drops_even_speech_to_bound_lateness() -> None:
    config, scheduler, sessions, lateness = _overload(sheddable=False, steps=60, speech=True)
    # ANIMATE_PRIORITY sessions never shed idle chunks and session 0 has speech: they fall
    # behind, the daemon reports degraded (policy step 3)...
    assert lateness[3] > lateness[0] and max(lateness) > config.degrade_lag_chunks * CHUNK_NS
    load = scheduler.snapshot()
    assert load.degraded and "late" in load.reason
    # ...and past drop_lag_chunks any chunk is skipped, speech included (step 4): bounded.
    assert max(lateness) <= config.drop_lag_chunks * CHUNK_NS
    assert all(s.counters.dropped_chunks > 0 for s in sessions)
    scheduler.remove(sessions[0].session_id)
    assert scheduler.snapshot().degraded  # sessions remain: still degraded
    for session in sessions[1:]:
        scheduler.remove(session.session_id)
    assert not scheduler.snapshot().degraded  # no session left: nothing can be late
