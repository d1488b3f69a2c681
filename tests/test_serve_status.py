"""Sessions.GetServerStatus and `lpm-npc client status`: the capacity the daemon measured (or its
configured cap), session counts through open / attach / detach / close, the serving state, and
token auth (for it and for the Traces service).

A fake generator (no torch) keeps these fast: its steps return black frames at once, except
that while the daemon probes its capacity a batch of two sleeps 0.2 s (> 0.8 x a 167 ms chunk),
so the measured capacity is exactly 1.
"""

import json
import time

import grpc
import numpy as np
import pytest

import lpm_npc
from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc._proto import traces_pb2 as tpb
from lpm_npc.cli import main as cli_main
from lpm_npc.config import ModelConfig, ServeConfig
from lpm_npc.engine.pacing import LoadSnapshot
from lpm_npc.engine.protocol import ChunkFrames, frame_pts
from lpm_npc.serve.client import EventQueue, LpmClient, header_event
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images

CFG = ModelConfig.from_name("test-tiny")
CHUNK_MS = CFG.samples_per_chunk * 1000.0 / 16_000
PATIENT = ServeConfig(degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6)
SHA = "ab" * 32


class FakeGenerator:
    """A ChunkGenerator of black frames; slow for batches of two while `probing`."""

    cfg = CFG

    def __init__(self) -> None:
        self.probing = True

    def prepare(self, images, roles, *, name=""):  # noqa: ANN001
        return name

    def open(self, character, *, prompt="", seed=0, size=None):  # noqa: ANN001
        return {"size": size or CFG.image_size}

    def set_prompt(self, state, prompt: str) -> None:  # noqa: ANN001
        pass

    def step(self, states, audio):  # noqa: ANN001
        if self.probing and len(states) > 1:
            time.sleep(0.2)
        fpc = CFG.frames_per_chunk
        return [
            ChunkFrames(
                a.chunk_index,
                np.zeros((fpc, s["size"], s["size"], 3), np.uint8),
                frame_pts(a.start_sample, fpc),
                0,
                1,
            )
            for s, a in zip(states, audio, strict=True)
        ]

    def close(self, state) -> None:  # noqa: ANN001
        pass


def _wait_for(client: LpmClient, predicate, timeout: float = 10.0) -> spb.ServerStatus:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        status = client.server_status()
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def test_status_reports_the_measured_capacity(tmp_path) -> None:
    generator = FakeGenerator()
    config = ServeConfig(max_sessions=4, measure_capacity=True, degrade_lag_chunks=1e6)
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=config) as running:
        generator.probing = False
        with LpmClient(running.address, timeout=30) as client:
            status = client.server_status()
        measured = running.daemon.capacity.sessions
    assert status.state == spb.SERVING_STATE_SERVING
    assert status.capacity_source == "measured"
    assert status.capacity_sessions == 1 == measured
    assert status.session_limit == 1 and status.max_sessions == 4
    # The probe stopped at the first batch too slow: 1 (instant), 2 (>= 200 ms).
    assert [t.sessions for t in status.step_times] == [1, 2]
    assert status.step_times[0].step_ms < 0.8 * CHUNK_MS <= 200 <= status.step_times[1].step_ms
    assert status.chunk_ms == pytest.approx(CHUNK_MS)
    assert status.headroom == pytest.approx(0.8)


def test_status_without_measuring_reports_max_sessions_and_counts_sessions(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("LPM_NPC_TOKEN", raising=False)
    generator = FakeGenerator()
    generator.probing = False
    config = ServeConfig(
        max_sessions=3, degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6
    )
    with ServerThread(
        generator=generator, store_dir=str(tmp_path), config=config, checkpoint_sha=SHA
    ) as running:
        with LpmClient(running.address, timeout=30) as client:
            status = client.server_status()
            assert status.state == spb.SERVING_STATE_SERVING
            assert status.capacity_source == "max_sessions"
            assert status.capacity_sessions == 0 and not status.step_times
            assert status.session_limit == 3 == status.max_sessions
            assert status.model == "test-tiny" and status.checkpoint_sha256 == SHA
            assert status.version == lpm_npc.__version__
            assert status.chunk_ms == pytest.approx(CHUNK_MS)
            assert status.uptime_s >= 0
            assert (status.open_sessions, status.active_sessions) == (0, 0)

            client.register_images("ann", sheet_images(seed=1))
            first = client.open_session("ann").session_id
            second = client.open_session("ann").session_id
            status = client.server_status()
            counts = (status.open_sessions, status.active_sessions)
            assert counts == (2, 2)  # opened, first stream expected: active
            assert (status.attached_sessions, status.detached_sessions) == (0, 0)

            events = EventQueue()
            events.put(header_event(first))
            call = client.converse(events, timeout=30)
            assert next(call).WhichOneof("event") == "header"
            status = client.server_status()
            assert (status.open_sessions, status.active_sessions) == (2, 2)
            assert (status.attached_sessions, status.detached_sessions) == (1, 0)

            events.close()  # half-close: the stream ends, the session stays open, detached
            for _ in call:
                pass
            status = _wait_for(client, lambda s: s.detached_sessions == 1)
            assert (status.open_sessions, status.active_sessions) == (2, 1)
            assert (status.attached_sessions, status.detached_sessions) == (0, 1)

            client.close_session(first)
            status = client.server_status()
            assert (status.open_sessions, status.active_sessions) == (1, 1)
            assert (status.attached_sessions, status.detached_sessions) == (0, 0)

            # The CLI prints the same, as JSON or as text.
            address = ["client", "--address", running.address]
            assert cli_main([*address, "status", "--json"]) == 0
            printed = json.loads(capsys.readouterr().out)
            assert printed["state"] == "serving" and printed["session_limit"] == 3
            assert printed["capacity_source"] == "max_sessions"
            assert printed["open_sessions"] == 1 and printed["checkpoint_sha256"] == SHA
            assert cli_main([*address, "status"]) == 0
            text = capsys.readouterr().out
            assert "serving" in text and "3 sessions (not measured" in text

            # Degraded and draining are reported as such.
            daemon = running.daemon
            snapshot = daemon.scheduler.snapshot
            daemon.scheduler.snapshot = lambda: LoadSnapshot(2.0, 500.0, True, "chunks are late")
            try:
                status = client.server_status()
                assert status.state == spb.SERVING_STATE_DEGRADED
                assert status.degraded_reason == "chunks are late" and status.rtf == 2.0
            finally:
                daemon.scheduler.snapshot = snapshot
            daemon.sessions.draining = True
            try:
                assert client.server_status().state == spb.SERVING_STATE_DRAINING
            finally:
                daemon.sessions.draining = False
            client.close_session(second)


def _code(fn, *args) -> grpc.StatusCode:  # noqa: ANN001, ANN002
    with pytest.raises(grpc.RpcError) as error:
        fn(*args)
    return error.value.code()


def test_status_and_traces_need_the_token(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LPM_NPC_TOKEN", raising=False)
    generator = FakeGenerator()
    generator.probing = False
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    trace_id = "0" * 32
    with ServerThread(
        generator=generator, store_dir=str(tmp_path), token="s3cret", config=PATIENT
    ) as running:
        for token in (None, "wrong"):
            with LpmClient(running.address, token=token, timeout=10) as client:
                assert _code(client.server_status) == unauthenticated
                listing = tpb.ListTracesRequest()
                list_traces = client.traces.ListTraces
                assert _code(list_traces, listing, None, client.metadata) == unauthenticated
                assert _code(client.get_trace, trace_id) == unauthenticated
                replay_request = tpb.ReplayTraceRequest(trace_id=trace_id)
                replay = client.traces.ReplayTrace(replay_request, metadata=client.metadata)
                assert _code(list, replay) == unauthenticated
        address = ["client", "--address", running.address]
        assert cli_main([*address, "status"]) != 0
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        with LpmClient(running.address, token="s3cret", timeout=10) as client:
            assert client.server_status().state == spb.SERVING_STATE_SERVING
            listing = client.traces.ListTraces(tpb.ListTracesRequest(), metadata=client.metadata)
            assert list(listing.traces) == []
            assert _code(client.get_trace, trace_id) == grpc.StatusCode.NOT_FOUND
        assert cli_main([*address, "--token", "s3cret", "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "serving"
