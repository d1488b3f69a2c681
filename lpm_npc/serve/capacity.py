"""How many sessions this machine can step in real time, measured at start-up.

`measure_capacity(generator, max_sessions, headroom)` prepares a small random character, then for
n = 1, 2, ... up to `max_sessions` opens n sessions and times batched generator steps (one
warm-up step, then the fastest of `repeats` timed steps, so a single stall does not decide). The
capacity is the largest n whose step takes at most `headroom` x one chunk of media time (the
rest is left for delivery, the event loop and jitter); at least 0 (a machine that cannot even
step one session in real time serves none). The search stops at the first n that is too slow:
step time grows with the batch.

It runs on whatever thread calls it and uses the generator exclusively while it runs (the daemon
calls it on the generator's worker thread before serving). It knows nothing of gRPC.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lpm_npc.config import SAMPLE_RATE
from lpm_npc.engine.protocol import ChunkAudio, ChunkGenerator

log = logging.getLogger(__name__)

_ROLES = [("global", ""), ("view", "front"), ("expression", "smile")]


@dataclass(frozen=True)
class CapacityReport:
    """The measured capacity and what it was decided from."""

    sessions: int  # sessions steppable in real time (0..max_sessions)
    chunk_s: float  # media time of one chunk
    headroom: float  # fraction of chunk_s a step may take
    step_s: tuple[float, ...]  # fastest timed step per batch size 1, 2, ... (as far as measured)

    def describe(self) -> str:
        steps = ", ".join(f"{n}: {s * 1000:.0f} ms" for n, s in enumerate(self.step_s, 1))
        return (
            f"measured capacity {self.sessions} sessions (a step may take "
            f"{self.headroom * self.chunk_s * 1000:.0f} ms of a {self.chunk_s * 1000:.0f} ms "
            f"chunk; step time by batch size: {steps})"
        )


def measure_capacity(
    generator: ChunkGenerator,
    max_sessions: int,
    *,
    headroom: float = 0.8,
    repeats: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> CapacityReport:
    """Measure (see the module docstring). `max_sessions` >= 1, 0 < headroom <= 1; `clock`
    (seconds) is injectable so tests can give steps a known duration."""
    if max_sessions < 1:
        raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
    if not 0.0 < headroom <= 1.0:
        raise ValueError(f"headroom must be in (0, 1], got {headroom}")
    cfg = generator.cfg
    samples = cfg.samples_per_chunk
    chunk_s = samples / SAMPLE_RATE
    side = cfg.image_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(_ROLES), side, side, 3), dtype=np.uint8)
    character = generator.prepare(images, _ROLES, name="capacity-probe")
    speech = (0.1 * rng.standard_normal(samples)).astype(np.float32)
    silence = np.zeros(samples, np.float32)
    steps: list[float] = []
    capacity = 0
    for n in range(1, max_sessions + 1):
        states = [generator.open(character, seed=i) for i in range(n)]
        try:
            timings = []
            for k in range(repeats + 1):
                audio = [ChunkAudio(k * samples, speech, silence) for _ in range(n)]
                started = clock()
                generator.step(states, audio)
                timings.append(clock() - started)
        finally:
            for state in states:
                generator.close(state)
        steps.append(min(timings[1:]))  # the first step warms up (allocations, caches)
        if steps[-1] > headroom * chunk_s:
            break
        capacity = n
    report = CapacityReport(capacity, chunk_s, headroom, tuple(steps))
    log.info("%s", report.describe())
    return report
