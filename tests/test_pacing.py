"""The audio clock without a model: track buffers, the pacing rules, the load monitor."""

import numpy as np
import pytest

from lpm_npc.config import SAMPLES_PER_FRAME, ServeConfig
from lpm_npc.engine.pacing import NS_PER_SAMPLE, ChunkOutlook, Due, LoadMonitor, chunk_due
from lpm_npc.engine.session import AudioOrderError, AudioOverflowError, TrackBuffer

SPC = 4 * SAMPLES_PER_FRAME  # samples per chunk
CHUNK_NS = SPC * NS_PER_SAMPLE


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


def test_track_buffer_reports_when_a_chunk_was_complete() -> None:
    track = TrackBuffer(10_000)
    track.append(np.ones(60, np.float32), 0, arrived_ns=10)
    track.append(np.ones(60, np.float32), None, arrived_ns=20)  # spans the first take's end
    first = track.take(100)
    assert first.arrived_ns == 20 and first.received == 100
    second = track.take(100)
    assert second.arrived_ns == 20 and second.received == 20  # the rest is silence
    assert track.take(100).arrived_ns is None


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


def test_load_monitor_degrades_and_recovers_with_hysteresis() -> None:
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
