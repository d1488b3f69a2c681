"""Sessions whose stream is gone: they stop counting against admission at once, can be reattached
while a slot is free, are closed (ring unlinked) after the grace period, and cannot pile up."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import grpc
import numpy as np
import pytest

from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.config import SAMPLES_PER_FRAME, ServeConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import LpmClient, stream_conversation
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images

PATIENT = ServeConfig(
    max_sessions=1, degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6
)
SPEECH = (0.1 * np.sin(np.arange(8 * SAMPLES_PER_FRAME) * 0.05)).astype(np.float32)

# A client in its own process: streams until it has a frame, says so, then waits to be killed.
_CLIENT = """
import sys, threading
from lpm_npc.serve.client import EventQueue, LpmClient, header_event
queue = EventQueue()
queue.put(header_event(sys.argv[2]))
with LpmClient(sys.argv[1], timeout=60) as client:
    for event in client.converse(queue):
        if event.WhichOneof("event") == "frame":
            print("frame", flush=True)
            threading.Event().wait()
"""


@pytest.fixture(scope="module")
def generator():
    return StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny")


def _wait_for(condition, running: ServerThread, timeout_s: float = 30.0) -> None:
    """Poll a condition on the server's loop until it holds (a deadline, not a sleep to race)."""
    deadline = time.monotonic() + timeout_s

    async def check() -> bool:
        return condition()

    while not running.call(check):
        assert time.monotonic() < deadline, "condition did not hold in time"
        time.sleep(0.02)


def test_a_detached_session_frees_its_slot_and_reattaches_when_one_is_free(generator, tmp_path):
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=PATIENT) as running:
        with LpmClient(running.address, timeout=30) as c:
            c.register_images("ann", sheet_images(seed=1))
            first = c.open_session("ann")
            with pytest.raises(grpc.RpcError) as error:
                c.open_session("ann")  # opened, not yet streamed: it counts
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_sessions = 1" in error.value.details()
            stream_conversation(c, first, SPEECH, None, fast=True, timeout=30)
            second = c.open_session("ann")  # the first one's stream ended: its slot is free
            with pytest.raises(grpc.RpcError) as error:
                stream_conversation(c, first, SPEECH, None, fast=True, timeout=30)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "cannot reattach" in error.value.details()
            c.close_session(second.session_id)
            again = stream_conversation(c, first, SPEECH, None, fast=True, timeout=30)
            assert again.header.next_sample > 0  # the same session, its clock resumed


def test_detached_sessions_are_capped_and_the_oldest_is_closed(generator, tmp_path):
    config = replace(PATIENT, max_sessions=2)
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=config) as running:
        with LpmClient(running.address, timeout=30) as c:
            c.register_images("ann", sheet_images(seed=1))
            ids = []
            for _ in range(3):
                session = c.open_session("ann")
                stream_conversation(c, session, SPEECH, None, fast=True, timeout=30)
                ids.append(session.session_id)
            assert set(ids) <= set(running.daemon.sessions.sessions)  # 3 detached, none active
            c.open_session("ann")  # 3 detached exceed the cap of 2: the oldest goes
            assert ids[0] not in running.daemon.sessions.sessions
            assert set(ids[1:]) <= set(running.daemon.sessions.sessions)
            with pytest.raises(grpc.RpcError) as error:
                c.close_session(ids[0])
            assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_stale_session_is_closed_and_its_ring_unlinked(generator, tmp_path):
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=PATIENT) as running:
        with LpmClient(running.address, timeout=30) as c:
            c.register_images("ann", sheet_images(seed=1))
            session = c.open_session("ann", delivery=spb.DELIVERY_SHM)
            assert os.path.exists(session.shm_path)
            limit_ns = int(PATIENT.detached_timeout_s * 1e9)

            async def reap_later() -> list[str]:  # as the reaper would, after the grace period
                return await running.daemon.sessions.close_stale(time.monotonic_ns() + limit_ns + 1)

            assert running.call(reap_later) == [session.session_id]
            assert not os.path.exists(session.shm_path)
            c.open_session("ann")


def test_a_client_killed_mid_stream_frees_its_slot_and_the_session_can_be_reattached(
    generator, tmp_path
):
    with ServerThread(generator=generator, store_dir=str(tmp_path), config=PATIENT) as running:
        with LpmClient(running.address, timeout=30) as c:
            c.register_images("ann", sheet_images(seed=1))
            session = c.open_session("ann", delivery=spb.DELIVERY_SHM)
            child = subprocess.Popen(
                [sys.executable, "-c", _CLIENT, running.address, session.session_id],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert child.stdout.readline().strip() == "frame"  # mid-stream now
                os.kill(child.pid, signal.SIGKILL)
                child.wait(30)
            finally:
                if child.poll() is None:
                    child.kill()
            served = running.daemon.sessions.sessions[session.session_id]
            _wait_for(lambda: not served.stream_attached, running)
            assert os.path.exists(session.shm_path)  # kept for the grace period
            other = c.open_session("ann")  # the dead client's session no longer counts
            c.close_session(other.session_id)
            resumed = stream_conversation(c, session, SPEECH, None, fast=True, timeout=30)
            assert resumed.frames and resumed.header.next_sample > 0
            c.close_session(session.session_id)
            assert not os.path.exists(session.shm_path)
