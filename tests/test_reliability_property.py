"""Property test (hypothesis) over random Converse event sequences against a real daemon.

Random audio chunks (size, track, encoding, explicit position or none: gaps, overlaps, audio in
the past), segment ends, interrupts, prompt changes (some too long), a stray header, and a close
of the session mid-stream. Whatever the sequence, the stream keeps its invariants:

- frame `seq` strictly increases and pts never go back;
- every Interrupt the daemon accepted is answered by exactly one PlaybackFinished{interrupted};
- the stream ends OK, or with INVALID_ARGUMENT / RESOURCE_EXHAUSTED / NOT_FOUND and a message —
  never UNKNOWN or INTERNAL.
"""

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.config import ServeConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import (
    EventQueue,
    LpmClient,
    header_event,
    interrupt_event,
    prompt_event,
    segment_end_event,
)
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images

CLEAR_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
}
TRACKS = (spb.TRACK_SPEAK, spb.TRACK_LISTEN, 7)  # 7: not a track


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    config = ServeConfig(
        max_sessions=64, degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6
    )
    with ServerThread(
        generator=StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny"),
        store_dir=str(tmp_path_factory.mktemp("store")),
        config=config,
    ) as server:
        with LpmClient(server.address, timeout=30) as client:
            client.register_images("ann", sheet_images(seed=1))
        yield server


audio = st.builds(
    lambda track, size, position, as_float, odd: ("audio", track, size, position, as_float, odd),
    st.sampled_from(TRACKS),
    st.integers(0, 2000),
    st.none() | st.integers(0, 12_000),
    st.booleans(),
    st.booleans() | st.just(False),
)
event = st.one_of(
    audio,
    audio,
    st.tuples(st.just("segment_end"), st.sampled_from(TRACKS)),
    st.tuples(st.just("interrupt")),
    st.tuples(st.just("prompt"), st.integers(0, 600)),
    st.tuples(st.just("header")),
)
sequences = st.tuples(st.lists(event, max_size=8), st.booleans())  # (events, close mid-stream)


def _client_event(spec: tuple, session_id: str) -> spb.ClientEvent:
    kind = spec[0]
    if kind == "audio":
        _, track, size, position, as_float, odd = spec
        pcm = (0.2 * np.sin(np.arange(size) * 0.07)).astype(np.float32)
        data = pcm.astype("<f4").tobytes() if as_float else (pcm * 32767).astype("<i2").tobytes()
        chunk = spb.AudioChunk(
            track=track,
            pcm=data + (b"\x00" if odd else b""),
            encoding=spb.AUDIO_ENCODING_FLOAT32 if as_float else spb.AUDIO_ENCODING_PCM16,
        )
        if position is not None:
            chunk.sample_position = position
        return spb.ClientEvent(audio=chunk)
    if kind == "segment_end":
        return segment_end_event(spec[1])
    if kind == "interrupt":
        return interrupt_event()
    if kind == "prompt":
        return prompt_event("x" * spec[1])
    return header_event(session_id)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=sequences)
def test_random_converse_sequences_keep_the_stream_invariants(running, sequence) -> None:
    specs, close_mid_stream = sequence
    with LpmClient(running.address, timeout=60) as client:
        session_id = client.open_session("ann").session_id
        queue = EventQueue()
        queue.put(header_event(session_id))
        for spec in specs:
            queue.put(_client_event(spec, session_id))
        call = client.converse(queue, timeout=60)
        frames, interrupted_answers = [], 0
        if not close_mid_stream:
            queue.close()
        try:
            for server_event in call:
                kind = server_event.WhichOneof("event")
                if kind == "frame":
                    frames.append(server_event.frame)
                    if close_mid_stream and len(frames) == 1:
                        client.close_session(session_id)
                        queue.close()
                elif kind == "playback_finished" and server_event.playback_finished.interrupted:
                    interrupted_answers += 1
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
        finally:
            queue.close()
        if not close_mid_stream:
            try:
                client.close_session(session_id)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
    assert code == grpc.StatusCode.OK or (code in CLEAR_ERRORS and details), (code, details)
    seqs = [f.seq for f in frames]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs
    pts = [f.pts_samples for f in frames]
    assert all(a <= b for a, b in zip(pts, pts[1:])), pts
    interrupts = sum(1 for spec in specs if spec[0] == "interrupt")
    if code == grpc.StatusCode.OK and not close_mid_stream:
        # every event was accepted: each interrupt has its own answer
        assert interrupted_answers == interrupts
    else:
        assert interrupted_answers <= interrupts
