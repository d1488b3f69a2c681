"""Building and running the daemon: `create_server(address, ...) -> (server, port)`.

`create_server` wires a `Daemon` into a `grpc.aio` server with the `Characters` and `Sessions`
services, the standard health service (`grpc.health.v1`, SERVING while up, NOT_SERVING while
draining), reflection, optional token auth, INVALID_ARGUMENT for undecodable requests (`malformed.py`),
keepalive (a vanished client is detected within seconds), message-size limits, and (with `metrics_port`) the
Prometheus exporter. It binds at once (port 0 picks a free port) and returns an `LpmServer`
whose `start()` / `stop(grace)` also run and drain the daemon. It must be called from the event
loop that will run the server.

`ServerThread` runs all that on a private event loop in a background thread: what tests, the
demo and the benchmark use to talk to a real server from ordinary synchronous code.

The default address binds 127.0.0.1: exposing the daemon is an explicit choice (`--host`), and
binding anything else needs a token or TLS (`tls=`, `serve/tls.py`) unless `insecure=True`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lpm_npc._proto import (
    characters_pb2,
    characters_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    traces_pb2,
    traces_pb2_grpc,
)
from lpm_npc.config import ServeConfig, SheetLimits
from lpm_npc.serve.auth import TokenAuthInterceptor
from lpm_npc.serve.daemon import Daemon
from lpm_npc.serve.malformed import MalformedRequestInterceptor
from lpm_npc.serve.servicers import CharactersServicer, SessionsServicer
from lpm_npc.serve.tls import ServerTls, check_exposure
from lpm_npc.serve.traces import TracesServicer, TraceStore

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:50061"
SERVICE_NAMES = (
    characters_pb2.DESCRIPTOR.services_by_name["Characters"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["Sessions"].full_name,
    traces_pb2.DESCRIPTOR.services_by_name["Traces"].full_name,
)


class LpmServer:
    """A grpc.aio server bound together with its `Daemon`."""

    def __init__(self, server: grpc.aio.Server, daemon: Daemon, health: Any, port: int) -> None:
        self.grpc_server = server
        self.daemon = daemon
        self.health = health
        self.port = port
        self.metrics_port: int | None = None
        self.traces: TraceStore | None = None  # set by create_server

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def start(self) -> None:
        await self.daemon.start()
        await self.grpc_server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving on port %d", self.port)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful drain: NOT_SERVING, finish buffered audio (up to `grace` s), then stop."""
        grace = self.daemon.config.drain_grace_s if grace is None else grace
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.daemon.drain(grace)
        await self.daemon.stop()
        if self.traces is not None:
            self.traces.finish_all()
        await self.grpc_server.stop(min(grace, 1.0))

    async def wait_for_termination(self) -> None:
        await self.grpc_server.wait_for_termination()


def create_server(
    address: str = DEFAULT_ADDRESS,
    *,
    generator: Any,
    store_dir: str,
    config: ServeConfig = ServeConfig(),
    sheet_limits: SheetLimits = SheetLimits(),
    token: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    record_traces: bool = False,
    checkpoint_sha: str = "",
    tls: ServerTls | None = None,
    insecure: bool = False,
) -> tuple[LpmServer, int]:
    """Build and bind the daemon (see the module docstring); returns (server, bound port).

    With `tls` the port speaks TLS (mutual TLS when `tls.client_ca` is set). A host other than
    loopback needs `token` or `tls` unless `insecure` (`tls.check_exposure`, TlsError)."""
    host = address.rsplit(":", 1)[0]
    check_exposure(host, token=token, tls=tls is not None, insecure=insecure)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # A vanished client (crash, pulled cable) is noticed within keepalive time + timeout;
        # clients may ping that often too (lpm-npc client and the bridges do).
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", int(config.keepalive_time_s * 500)),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    # Auth first (an unauthenticated caller learns nothing about message types), then decoding.
    interceptors: list[grpc.aio.ServerInterceptor] = [TokenAuthInterceptor(token)] if token else []
    interceptors.append(MalformedRequestInterceptor())
    server = grpc.aio.server(options=options, interceptors=interceptors)
    daemon = Daemon(
        generator,
        store_dir,
        config=config,
        sheet_limits=sheet_limits,
        checkpoint_sha=checkpoint_sha,
    )
    characters_pb2_grpc.add_CharactersServicer_to_server(CharactersServicer(daemon), server)
    # traces live in the store (`<store_dir>/traces`); record_traces records every session
    traces = TraceStore(
        Path(store_dir) / "traces", record_all=record_traces, checkpoint_sha=checkpoint_sha
    )
    sessions_pb2_grpc.add_SessionsServicer_to_server(SessionsServicer(daemon, traces), server)
    traces_pb2_grpc.add_TracesServicer_to_server(TracesServicer(traces, daemon.scheduler), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if tls is not None:
        port = server.add_secure_port(address, tls.credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    lpm = LpmServer(server, daemon, health_servicer, port)
    lpm.traces = traces
    if metrics_port is not None:
        lpm.metrics_port = daemon.metrics.start_http(metrics_host, metrics_port)
        log.info("metrics on http://%s:%d/metrics", metrics_host, lpm.metrics_port)
    return lpm, port


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()
_KEEPALIVE: list[Any] = []


def _shared_loop() -> asyncio.AbstractEventLoop:
    """One event loop in one daemon thread for every ServerThread of the process: grpc.aio's
    completion-queue poller belongs to the first loop that used it, so later loops would race it."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, daemon=True, name="lpm-serve").start()

            async def hold_grpc_aio() -> None:
                # grpc.aio tears its poller down when its last object goes, while a callback may
                # still be queued (a logged EBADF); an idle channel keeps it up between servers.
                _KEEPALIVE.append(grpc.aio.insecure_channel("127.0.0.1:9"))

            asyncio.run_coroutine_threadsafe(hold_grpc_aio(), _LOOP).result(10)
        return _LOOP


class ServerThread:
    """Runs `create_server(...)` on a background event loop (one daemon thread per process).

    Use as a context manager: `with ServerThread(generator=g, store_dir=d) as running:` then talk
    to `running.address`. `call(coro_fn)` runs a coroutine function on the server's loop (tests
    use it to inspect the daemon safely).
    """

    def __init__(self, address: str = "127.0.0.1:0", **kwargs: Any) -> None:
        self._address = address
        self._kwargs = kwargs
        self._loop = _shared_loop()
        self.server: LpmServer | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def daemon(self) -> Daemon:
        assert self.server is not None
        return self.server.daemon

    def call(self, coroutine_fn, *args: Any, timeout: float = 60.0) -> Any:  # noqa: ANN001
        future = asyncio.run_coroutine_threadsafe(coroutine_fn(*args), self._loop)
        return future.result(timeout)

    def start(self) -> ServerThread:
        async def build() -> None:
            self.server, self.port = create_server(self._address, **self._kwargs)
            await self.server.start()

        self.call(build)
        return self

    def stop(self, grace: float = 0.5) -> None:
        if self.server is not None:
            try:
                self.call(self.server.stop, grace)
            except (concurrent.futures.TimeoutError, RuntimeError):
                log.exception("server did not stop cleanly")
            self.server = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
