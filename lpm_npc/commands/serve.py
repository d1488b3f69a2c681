"""`lpm-npc serve`: run the gRPC daemon until SIGTERM / Ctrl-C, then drain gracefully.

The backend flags (`lpm_npc.onnx.backend`: `--backend torch|onnxruntime`, `--onnx-export`,
`--ort-threads`, `--ort-decoder`) pick the generator; the scheduler, sessions, delivery and the
start-up capacity measurement are the same for both (they only see the ChunkGenerator protocol).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def default_store_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lpm-npc" / "store"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the gRPC daemon (Characters, Sessions, health, reflection, metrics)",
        description="Serves lpm_npc.v1 on HOST:PORT (127.0.0.1 unless told otherwise). Prints "
        "'listening on HOST:PORT' once bound. SIGTERM or Ctrl-C drains: health goes "
        "NOT_SERVING, new sessions are refused, open streams finish their buffered audio.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50061, help="port (0 picks a free one)")
    parser.add_argument(
        "--store", default=None, help=f"registry dir (default {default_store_dir()})"
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus /metrics port")
    parser.add_argument("--max-sessions", type=int, default=None, help="open sessions at most")
    parser.add_argument(
        "--no-measure-capacity",
        action="store_true",
        help="skip the start-up measurement of how many sessions this machine steps in real "
        "time; admit up to --max-sessions instead",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require 'authorization: Bearer T' (default: $LPM_NPC_TOKEN if set, else no auth)",
    )
    parser.add_argument("--tls-cert", default=None, help="serve TLS: certificate chain (PEM)")
    parser.add_argument("--tls-key", default=None, help="serve TLS: private key (PEM)")
    parser.add_argument(
        "--tls-client-ca",
        default=None,
        help="mutual TLS: require client certificates signed by this CA (PEM)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding a non-loopback --host with neither --token nor TLS",
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="skip the checkpoint: random weights of --preset (tests, smoke runs)",
    )
    parser.add_argument("--preset", default="tiny", help="preset for random weights")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--record-traces",
        action="store_true",
        help="record every session as a trace in STORE/traces (docs/trace-format.md)",
    )
    from lpm_npc.onnx.backend import add_backend_arguments

    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import signal

    from lpm_npc.config import SERVE_DROP_LAG_CHUNKS, ServeConfig
    from lpm_npc.errors import UserError
    from lpm_npc.onnx.backend import BackendChoice, make_generator
    from lpm_npc.serve.tls import ServerTls, TlsError, check_exposure

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    if args.max_sessions is not None and args.max_sessions < 1:
        raise UserError(f"--max-sessions must be >= 1, got {args.max_sessions}")
    backend = BackendChoice.from_args(args)
    backend.check()
    from lpm_npc.bench.threads import set_torch_threads

    set_torch_threads(args.threads or None)
    config = ServeConfig(
        measure_capacity=not args.no_measure_capacity, drop_lag_chunks=SERVE_DROP_LAG_CHUNKS
    )
    if args.max_sessions is not None:
        config = dataclasses.replace(config, max_sessions=args.max_sessions)
    token = args.token if args.token is not None else os.environ.get("LPM_NPC_TOKEN") or None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UserError("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        raise UserError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    try:
        tls = None
        if args.tls_cert:
            tls = ServerTls.from_files(args.tls_cert, args.tls_key, args.tls_client_ca)
        check_exposure(args.host, token=token, tls=tls is not None, insecure=args.insecure)
    except TlsError as error:
        raise UserError(str(error)) from None
    store = Path(args.store) if args.store else default_store_dir()
    # Without --checkpoint the embedded default; random weights (with a warning) only when it is
    # missing or when asked for.
    generator = make_generator(
        backend,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        allow_random=args.checkpoint is None,
        preset=args.preset,
    )

    async def main() -> None:
        from lpm_npc.serve.server import create_server

        server, port = create_server(
            f"{args.host}:{args.port}",
            generator=generator,
            store_dir=str(store),
            config=config,
            token=token,
            tls=tls,
            insecure=args.insecure,
            metrics_port=args.metrics_port,
            metrics_host=args.host,
            record_traces=args.record_traces,
            checkpoint_sha=_checkpoint_sha(args),
        )
        # Handlers before "listening on": a SIGTERM right after that line must drain, not kill.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        if server.daemon.capacity is not None:
            print(server.daemon.capacity.describe(), flush=True)
        print(f"listening on {args.host}:{port}", flush=True)
        if server.metrics_port is not None:
            print(f"metrics on http://{args.host}:{server.metrics_port}/metrics", flush=True)
        await stop.wait()
        print("draining...", flush=True)
        await server.stop()

    asyncio.run(main())
    return 0


def _checkpoint_sha(args: argparse.Namespace) -> str:
    """sha256 of the served weights for trace headers ("" for random weights)."""
    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.trace.recorder import checkpoint_sha256

    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint_dir()
    if args.random_weights or not (path / "model.safetensors").is_file():
        return ""
    return checkpoint_sha256(path)
