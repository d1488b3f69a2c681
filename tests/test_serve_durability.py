"""kill -9 durability: `lpm-npc serve` in a subprocess, registrations racing a SIGKILL, restart."""

import signal
import subprocess
import threading
from pathlib import Path

import grpc

from lpm_npc.serve.client import LpmClient
from lpm_npc.serve.store import canonical_version, pixels_digest
from lpm_npc.serve.testing import sheet_images, spawn_daemon
from lpm_npc.synth.sheet import load_sheet

KILL_AFTER = 3  # registrations acknowledged (after "first") before the SIGKILL


def _start(store: Path) -> tuple[subprocess.Popen, str]:
    return spawn_daemon(store, preset="test")


def _check_intact(store: Path, client: LpmClient, acknowledged: dict[str, str]) -> None:
    visible = [p.name for p in store.rglob("*")]
    assert not [n for n in visible if n.startswith((".tmp-", ".trash-"))], "temp junk visible"
    listed = {c.character_id: c.version for c in client.list()}
    for character_id, version in acknowledged.items():
        assert listed.get(character_id) == version, f"{character_id} lost after kill -9"
    for character_id, version in listed.items():
        sheet = load_sheet(store / "objects" / version)  # every listed version is complete
        digests = [(im.role, im.label, pixels_digest(im.image)) for im in sheet.images]
        assert canonical_version(digests) == version
        assert client.get(f"{character_id}@{version}").version == version


def test_kill_9_mid_registration_loses_nothing_acknowledged(tmp_path: Path) -> None:
    store = tmp_path / "store"
    server, address = _start(store)
    acknowledged: dict[str, str] = {}
    try:
        with LpmClient(address, timeout=30) as client:
            acknowledged["first"] = client.register_images("first", sheet_images(seed=0)).version
            stop = threading.Event()
            enough = threading.Event()  # KILL_AFTER registrations acknowledged

            def register_forever() -> None:
                i = 1
                while not stop.is_set():
                    try:
                        reply = client.register_images(f"c{i}", sheet_images(seed=i, size=256))
                    except grpc.RpcError:
                        return  # the server died under us: this one was never acknowledged
                    acknowledged[reply.character_id] = reply.version
                    if len(acknowledged) > KILL_AFTER:
                        enough.set()
                    i += 1

            writer = threading.Thread(target=register_forever)
            writer.start()
            # The writer goes on registering, so the kill lands in (or between) registrations;
            # either way everything acknowledged before it must survive.
            assert enough.wait(120), f"{KILL_AFTER} registrations were not acknowledged in 120 s"
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            stop.set()
            writer.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    server, address = _start(store)
    try:
        with LpmClient(address, timeout=30) as client:
            _check_intact(store, client, acknowledged)
            # and the store keeps working after recovery
            again = client.register_images("after", sheet_images(seed=99))
            assert again.created and client.get("after").version == again.version
        server.send_signal(signal.SIGTERM)  # graceful drain exits cleanly
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
