"""Faults of the daemon process itself: SIGTERM with an open stream (drained, PlaybackFinished
sent, exit 0) and kill -9 mid-stream (the client sees UNAVAILABLE; a restarted daemon on the same
store serves the character and the client reopens)."""

import signal
from pathlib import Path

import grpc
import numpy as np
import pytest

from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.config import SAMPLE_RATE
from lpm_npc.serve.client import (
    EventQueue,
    LpmClient,
    audio_event,
    header_event,
    stream_conversation,
)
from lpm_npc.serve.testing import sheet_images, spawn_daemon

SPEECH = (0.1 * np.sin(np.arange(SAMPLE_RATE // 2) * 0.05)).astype(np.float32)  # 0.5 s


def _stop(process) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(30)


def _open_stream(client: LpmClient, session_id: str) -> tuple[EventQueue, object]:
    """A Converse stream with SPEECH buffered and the input left open (no segment end)."""
    queue = EventQueue()
    queue.put(header_event(session_id))
    queue.put(audio_event(spb.TRACK_SPEAK, SPEECH, 0))
    return queue, client.converse(queue, timeout=120)


def test_sigterm_drains_an_open_stream_sends_playback_finished_and_exits_0(tmp_path: Path):
    process, address = spawn_daemon(tmp_path / "store")
    try:
        with LpmClient(address, timeout=60) as client:
            client.register_images("ann", sheet_images(seed=1))
            session = client.open_session("ann")
            queue, events = _open_stream(client, session.session_id)
            kinds = []
            for event in events:
                kinds.append(event.WhichOneof("event"))
                if kinds.count("frame") == 1:
                    process.send_signal(signal.SIGTERM)  # mid-stream, input still open
            finished = [k for k in kinds if k == "playback_finished"]
            assert finished, f"no PlaybackFinished before the stream ended: {set(kinds)}"
            assert events.code() == grpc.StatusCode.OK  # ended by the drain, not cut
            queue.close()
        assert process.wait(60) == 0
    finally:
        _stop(process)


def test_kill_9_mid_stream_client_sees_unavailable_and_reopens_on_a_restarted_daemon(
    tmp_path: Path,
):
    store = tmp_path / "store"
    process, address = spawn_daemon(store)
    try:
        with LpmClient(address, timeout=60) as client:
            version = client.register_images("ann", sheet_images(seed=1)).version
            session = client.open_session("ann")
            queue, events = _open_stream(client, session.session_id)
            with pytest.raises(grpc.RpcError) as error:
                for event in events:
                    if event.WhichOneof("event") == "frame":
                        process.send_signal(signal.SIGKILL)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            queue.close()
        process.wait(30)
    finally:
        _stop(process)
    process, address = spawn_daemon(store)
    try:
        with LpmClient(address, timeout=60) as client:
            assert client.get("ann").version == version  # the store is intact
            reopened = client.open_session("ann")
            result = stream_conversation(client, reopened, SPEECH, None, fast=True, timeout=120)
            assert result.frames
            client.close_session(reopened.session_id)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        _stop(process)
