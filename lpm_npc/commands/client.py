"""`lpm-npc client ...`: the reference client for engine authors (register, list, stream, status)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "client",
        help="talk to a running daemon: register, list, get, delete, stream, status",
        description="Reference client of lpm_npc.v1; see docs/api.md.",
    )
    parser.add_argument("--address", default="127.0.0.1:50061", help="daemon HOST:PORT")
    parser.add_argument("--token", default=None, help="bearer token (default: $LPM_NPC_TOKEN)")
    parser.add_argument(
        "--tls", action="store_true", help="talk TLS (implied by any --tls-* option)"
    )
    parser.add_argument("--tls-ca", default=None, help="PEM CA to trust (default: system roots)")
    parser.add_argument("--tls-cert", default=None, help="client certificate PEM (mutual TLS)")
    parser.add_argument("--tls-key", default=None, help="client private key PEM (mutual TLS)")
    group = parser.add_subparsers(dest="client_command", metavar="CLIENT_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)

    reg = group.add_parser("register", help="upload a sheet directory (sheet.toml + images)")
    reg.add_argument("sheet_dir", help="directory holding sheet.toml and its images")
    reg.add_argument("--id", default="", help="character id (default: the manifest's name)")
    reg.add_argument("--json", action="store_true", help="machine-readable output")
    reg.set_defaults(func=run_register)

    lst = group.add_parser("list", help="list stored characters and versions")
    lst.add_argument("--id", default="", help="only this character id")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=run_list)

    get = group.add_parser("get", help="show one character version (ID or ID@VERSION)")
    get.add_argument("ref")
    get.add_argument("--json", action="store_true", help="machine-readable output")
    get.set_defaults(func=run_get)

    delete = group.add_parser("delete", help="delete ID (all versions) or ID@VERSION")
    delete.add_argument("ref")
    delete.set_defaults(func=run_delete)

    status = group.add_parser(
        "status",
        help="the daemon's state, capacity and session counts (Sessions.GetServerStatus)",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=run_status)

    stream = group.add_parser(
        "stream",
        help="play audio through Converse; write frames.json and video.mp4",
        description="Opens a session, streams --speak (and --listen) in real-time-sized chunks "
        "as an engine would (or as fast as the daemon accepts with --fast), and writes "
        "OUT/frames.json (seq, pts_ms, latency per frame; playback events) and OUT/video.mp4.",
    )
    stream.add_argument("--character", required=True, help="ID or ID@VERSION")
    stream.add_argument("--speak", required=True, help="NPC dialogue WAV (16 kHz mono)")
    stream.add_argument("--listen", default=None, help="player microphone WAV (16 kHz mono)")
    stream.add_argument("--delivery", choices=("inline", "shm"), default="inline")
    stream.add_argument("--prompt", default="", help="style / emotion prompt")
    stream.add_argument("--seed", type=int, default=0, help="session noise seed")
    stream.add_argument("--fast", action="store_true", help="send audio as fast as accepted")
    stream.add_argument("--out", required=True, help="output directory")
    stream.add_argument("--json", action="store_true", help="machine-readable summary")
    stream.add_argument(
        "--record",
        default=None,
        metavar="FILE",
        help="record the session as a trace (the daemon records what its generator consumed; "
        "the file is downloaded here when the session closes)",
    )
    stream.set_defaults(func=run_stream)


def _client(args: argparse.Namespace):  # noqa: ANN202
    import os

    from lpm_npc.errors import UserError
    from lpm_npc.serve.client import LpmClient
    from lpm_npc.serve.tls import ClientTls, TlsError

    token = args.token if args.token is not None else os.environ.get("LPM_NPC_TOKEN") or None
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        try:
            tls = ClientTls.from_files(args.tls_ca, args.tls_cert, args.tls_key)
        except TlsError as error:
            raise UserError(str(error)) from None
    return LpmClient(args.address, token=token, tls=tls)


def _rpc(fn, *a):  # noqa: ANN001, ANN002, ANN202
    """Call and turn a gRPC error into a one-line user error."""
    import grpc

    from lpm_npc.errors import UserError

    try:
        return fn(*a)
    except grpc.RpcError as error:
        raise UserError(f"{error.code().name}: {error.details()}") from error


def _character_dict(c) -> dict:  # noqa: ANN001
    return {
        "id": c.character_id,
        "version": c.version,
        "display_name": c.display_name,
        "references": [f"{r.role}:{r.label}" if r.label else r.role for r in c.references],
        "size_bytes": c.size_bytes,
        "prepared": c.prepared,
    }


def run_register(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = _rpc(client.register_sheet_dir, args.sheet_dir, args.id)
    if args.json:
        print(json.dumps({**_character_dict(reply.character), "created": reply.created}))
    else:
        state = "registered" if reply.created else "already stored"
        print(f"{state}: {reply.character_id}@{reply.version}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        characters = _rpc(client.list, args.id)
    if args.json:
        print(json.dumps([_character_dict(c) for c in characters], indent=1))
    else:
        for c in characters:
            print(f"{c.character_id}@{c.version[:16]}  {len(c.references)} refs  {c.display_name}")
    return 0


def run_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        c = _rpc(client.get, args.ref)
    print(json.dumps(_character_dict(c), indent=None if args.json else 1))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        versions = _rpc(client.delete, args.ref)
    print(f"deleted {len(versions)} version(s)")
    return 0


def _status_dict(s) -> dict:  # noqa: ANN001
    from lpm_npc._proto import sessions_pb2 as spb

    state = spb.ServingState.Name(s.state).removeprefix("SERVING_STATE_").lower()
    return {
        "state": state,
        "degraded_reason": s.degraded_reason,
        "capacity_sessions": s.capacity_sessions,
        "capacity_source": s.capacity_source,
        "session_limit": s.session_limit,
        "max_sessions": s.max_sessions,
        "open_sessions": s.open_sessions,
        "active_sessions": s.active_sessions,
        "attached_sessions": s.attached_sessions,
        "detached_sessions": s.detached_sessions,
        "model": s.model,
        "checkpoint_sha256": s.checkpoint_sha256,
        "step_ms": {str(t.sessions): round(t.step_ms, 3) for t in s.step_times},
        "chunk_ms": round(s.chunk_ms, 3),
        "headroom": s.headroom,
        "version": s.version,
        "uptime_s": round(s.uptime_s, 3),
        "rtf": round(s.rtf, 4),
    }


def run_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        d = _status_dict(_rpc(client.server_status))
    if args.json:
        print(json.dumps(d))
        return 0
    state = d["state"] + (f" ({d['degraded_reason']})" if d["degraded_reason"] else "")
    if d["capacity_source"] == "measured":
        capacity = f"measured {d['capacity_sessions']} sessions in real time"
    else:
        capacity = "not measured"
    steps = ", ".join(f"{n}: {ms:.0f} ms" for n, ms in d["step_ms"].items())
    sha = d["checkpoint_sha256"][:16] or "random weights / unknown"
    print(f"state        {state}")
    limit = f"{d['session_limit']} sessions ({capacity}; max_sessions {d['max_sessions']})"
    print(f"limit        {limit}")
    print(
        f"sessions     {d['open_sessions']} open, {d['active_sessions']} active, "
        f"{d['attached_sessions']} attached, {d['detached_sessions']} detached"
    )
    if steps:
        print(f"step time    {steps} (chunk {d['chunk_ms']:.0f} ms, headroom {d['headroom']:g})")
    print(f"model        {d['model']} @ {sha}")
    print(f"rtf          {d['rtf']:.2f}")
    print(f"version      lpm-npc {d['version']}, up {d['uptime_s']:.0f} s")
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lpm_npc._proto import sessions_pb2 as spb
    from lpm_npc.config import SAMPLES_PER_FRAME
    from lpm_npc.serve.client import stream_conversation, write_outputs
    from lpm_npc.synth.audio_io import read_wav

    speak = read_wav(args.speak)
    listen = read_wav(args.listen) if args.listen else None
    total = max(len(speak), len(listen) if listen is not None else 0) // SAMPLES_PER_FRAME
    delivery = spb.DELIVERY_SHM if args.delivery == "shm" else spb.DELIVERY_INLINE
    with _client(args) as client:
        session = _rpc(
            lambda: client.open_session(
                args.character,
                delivery=delivery,
                prompt=args.prompt,
                seed=args.seed,
                record_trace=args.record is not None,
            )
        )
        with tqdm(total=total, unit="frame", file=sys.stderr, disable=args.json) as bar:
            try:
                result = _rpc(
                    lambda: stream_conversation(
                        client,
                        session,
                        speak,
                        listen,
                        fast=args.fast,
                        prompt=None,
                        on_frame=lambda frame: bar.update(1),
                    )
                )
            finally:
                _rpc(client.close_session, session.session_id)
        if args.record is not None:
            Path(args.record).write_bytes(_rpc(lambda: client.get_trace(session.trace_id)))
    paths = write_outputs(result, args.out, speak, listen)
    latencies = sorted((f.received_at_unix_ns - f.input_ready_unix_ns) / 1e6 for f in result.frames)
    summary = {
        "session_id": result.session_id,
        "frames": len(result.frames),
        "delivery": args.delivery,
        "latency_ms_p50": latencies[len(latencies) // 2] if latencies else None,
        "latency_ms_p95": latencies[int(len(latencies) * 0.95)] if latencies else None,
        "playback": result.playback,
        "frames_json": str(paths["frames"]),
        "video": str(paths["video"]),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['frames']} frames ({args.delivery}); wrote {paths['video']} and {paths['frames']}"
        )
    return 0
