"""Traces recorded by a live daemon (two concurrent sessions, batched) replay with 0 mismatches;
the Traces service lists, serves and replays them; `client stream --record` downloads one."""

import json
import threading

import numpy as np
import pytest

from lpm_npc._proto import traces_pb2 as tpb
from lpm_npc.config import ServeConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import LpmClient, stream_conversation
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images
from lpm_npc.trace.format import read_trace
from lpm_npc.trace.replayer import replay

PATIENT = ServeConfig(degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6)


@pytest.fixture(scope="module")
def generator() -> StreamingGenerator:
    return StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny")


def _speech(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.05
    return (0.4 * np.sin(2 * np.pi * 180 * t) + noise).astype(np.float32)


def test_two_concurrent_recorded_sessions_replay_bit_exactly(generator, tmp_path):
    with (
        ServerThread(generator=generator, store_dir=str(tmp_path), config=PATIENT) as server,
        LpmClient(server.address, timeout=60) as client,
    ):
        character = client.register_images("ann", sheet_images(seed=1)).character_id
        sessions = [
            client.open_session(character, seed=s, prompt="calm", record_trace=True)
            for s in (11, 12)
        ]
        assert all(s.trace_id == s.session_id for s in sessions)
        results: list = [None, None]

        def run(i: int) -> None:
            speak = _speech(0.8, i)
            results[i] = stream_conversation(
                client, sessions[i], speak, speak, fast=True, timeout=60
            )

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for session in sessions:
            client.close_session(session.session_id)
        listed = client.traces.ListTraces(tpb.ListTracesRequest()).traces
        assert {t.trace_id for t in listed} == {s.trace_id for s in sessions}
        assert all(t.complete for t in listed)
        data = client.get_trace(sessions[0].trace_id)
        summary = list(
            client.traces.ReplayTrace(tpb.ReplayTraceRequest(trace_id=sessions[0].trace_id))
        )
    assert summary[-1].summary.mismatches == 0 and summary[-1].summary.frames > 0
    traces = [
        read_trace(data),
        read_trace(tmp_path / "traces" / f"{sessions[1].trace_id}.lpmtrace"),
    ]
    batch_sizes = {c["batch"]["size"] for t in traces for c in t.chunks}
    assert 2 in batch_sizes  # the streams overlapped: some steps served both sessions
    for trace, result in zip(traces, results, strict=True):
        assert [f["seq"] for f in trace.frames] == [f.seq for f in result.frames]
        outcome = replay(trace, generator)
        assert outcome.as_json() == {
            "frames": len(result.frames),
            "mismatches": 0,
            "first_mismatch": None,
        }


def test_client_stream_record_downloads_a_replayable_trace(generator, tmp_path, capsys):
    from lpm_npc.cli import main
    from lpm_npc.synth.audio_io import write_wav

    t = np.arange(8_000) / 16_000
    write_wav(tmp_path / "speak.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
    record = tmp_path / "mine.lpmtrace"
    with ServerThread(generator=generator, store_dir=str(tmp_path / "s"), config=PATIENT) as server:
        with LpmClient(server.address, timeout=60) as client:
            client.register_images("bea", sheet_images(seed=4))
        address = ["client", "--address", server.address]
        args = ["stream", "--character", "bea", "--speak", str(tmp_path / "speak.wav")]
        out = ["--fast", "--out", str(tmp_path / "out"), "--json", "--record", str(record)]
        assert main([*address, *args, *out]) == 0
    frames = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"]
    trace = read_trace(record)
    assert trace.end is not None and len(trace.frames) == frames > 0
    assert replay(trace, generator).mismatches == 0
