"""`lpm-npc bench serve`: the daemon measured end to end, through gRPC, in one run.

Four phases on one generator, each against a fresh in-process daemon on a free port:

1. **real time, INLINE** — N sessions stream `seconds` of speak + listen audio in real time (as
   engines do); per session: fps (frames / wall time from its first event to its last frame), dropped
   frames (expected - received), and frame latency (client receipt - the chunk's inputs being
   complete at the daemon) p50 / p95 over all frames.
2. **real time, SHM** — the same with the shared-memory ring; the *delivery* time of a frame
   (client has the pixels - the step finished) is compared with phase 1: `shm_vs_inline_delivery`
   = INLINE median delivery / SHM median delivery (> 1: SHM is faster).
3. **throughput, batched** and 4. **throughput, one by one** (`max_batch = 1`) — the same
   sessions send audio as fast as accepted with pacing off (no lead limit); frames per wall
   second over all sessions; `batched_vs_sequential` = phase 3 / phase 4.

The numbers are ratios measured in the same process on the same machine (DESIGN.md §6); the
absolute fps depend on the preset, the checkpoint and what else the CPU is doing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from lpm_npc.config import SAMPLE_RATE, ServeConfig


def _audio(seconds: float, seed: int) -> np.ndarray:
    """Speech-like test audio: a gliding tone under syllable-rate amplitude modulation."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))
    return (0.3 * envelope * np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE)).astype(np.float32)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _run_phase(
    generator: Any,
    config: ServeConfig,
    *,
    sessions: int,
    seconds: float,
    delivery: str,
    fast: bool,
) -> dict:
    from lpm_npc._proto import sessions_pb2 as spb
    from lpm_npc.serve.client import LpmClient, stream_conversation
    from lpm_npc.serve.server import ServerThread
    from lpm_npc.serve.testing import sheet_images

    kind = spb.DELIVERY_SHM if delivery == "shm" else spb.DELIVERY_INLINE
    with (
        tempfile.TemporaryDirectory() as store,
        ServerThread(generator=generator, store_dir=store, config=config) as server,
        LpmClient(server.address, timeout=600) as client,
    ):
        client.register_images("bench", sheet_images(seed=0))
        list(client.prepare("bench"))
        opened = [client.open_session("bench", delivery=kind, seed=i) for i in range(sessions)]
        results: list = [None] * sessions
        began = [0] * sessions
        errors: list[BaseException] = []

        def play(i: int) -> None:
            began[i] = time.time_ns()
            try:
                results[i] = stream_conversation(
                    client,
                    opened[i],
                    _audio(seconds, i),
                    _audio(seconds, 100 + i),
                    fast=fast,
                    timeout=600,
                )
            except BaseException as error:  # noqa: BLE001 - re-raised below on the main thread
                errors.append(error)

        steps_before = server.daemon.scheduler.stats.steps
        started = time.monotonic()
        threads = [threading.Thread(target=play, args=(i,)) for i in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        if errors:
            raise errors[0]
        stats = server.daemon.scheduler.stats
        steps = stats.steps - steps_before
        for session in opened:
            client.close_session(session.session_id)
    spc = generator.cfg.samples_per_chunk
    expected = -(-int(seconds * SAMPLE_RATE) // spc) * generator.cfg.frames_per_chunk
    per_session, latencies, deliveries = [], [], []
    for result, start in zip(results, began, strict=True):
        frames = result.frames
        span = (frames[-1].received_at_unix_ns - start) / 1e9  # the session's whole stream
        per_session.append(
            {
                "frames": len(frames),
                "fps": len(frames) / span,
                "dropped_frames": max(0, expected - len(frames)) + result.overwritten,
            }
        )
        latencies += [(f.received_at_unix_ns - f.input_ready_unix_ns) / 1e6 for f in frames]
        deliveries += [(f.received_at_unix_ns - f.step_finished_unix_ns) / 1e6 for f in frames]
    total = sum(s["frames"] for s in per_session)
    return {
        "delivery": delivery,
        "paced": not fast,
        "wall_s": wall,
        "frames_per_s": total / wall,
        "generator_steps": steps,
        "mean_batch": total / max(1, steps) / generator.cfg.frames_per_chunk,
        "per_session": per_session,
        "latency_ms_p50": _percentile(latencies, 0.5),
        "latency_ms_p95": _percentile(latencies, 0.95),
        "delivery_ms_p50": statistics.median(deliveries) if deliveries else None,
    }


def bench_serve(
    *,
    sessions: int,
    seconds: float,
    preset: str = "tiny",
    checkpoint: str | None = None,
    random_weights: bool = False,
    progress: bool = True,
) -> dict:
    """Run the four phases (module docstring) and return a JSON-ready report."""
    from lpm_npc.commands.serve import load_generator

    if preset == "test-tiny":
        from lpm_npc.serve.testing import tiny_generator

        generator = tiny_generator()
    else:
        generator = load_generator(checkpoint, random_weights=random_weights, preset=preset)
    # Behaviour under overload is part of the measurement: keep the default degradation policy
    # in the paced phases; throughput phases lift the pacing so the generator never waits.
    paced = ServeConfig(max_sessions=max(8, sessions))
    unpaced = replace(paced, max_lead_chunks=10**6, degrade_lag_chunks=1e9, shed_lag_chunks=1e9)
    phases = {}
    plan = [
        ("warmup", paced, "inline", False, 1, min(seconds, 1.0)),
        ("realtime_inline", paced, "inline", False, sessions, seconds),
        ("realtime_shm", paced, "shm", False, sessions, seconds),
        ("throughput_batched", unpaced, "inline", True, sessions, seconds),
        ("throughput_sequential", replace(unpaced, max_batch=1), "inline", True, sessions, seconds),
    ]
    for name, config, delivery, fast, n, length in plan:
        if progress:
            print(f"bench serve: {name} ({n} sessions x {length:g} s)", file=sys.stderr)
        phases[name] = _run_phase(
            generator, config, sessions=n, seconds=length, delivery=delivery, fast=fast
        )
    phases.pop("warmup")
    inline, shm = phases["realtime_inline"], phases["realtime_shm"]
    batched, sequential = phases["throughput_batched"], phases["throughput_sequential"]
    return {
        "model": generator.cfg.name,
        "image_size": generator.cfg.image_size,
        "sessions": sessions,
        "seconds": seconds,
        "per_session_fps": [s["fps"] for s in inline["per_session"]],
        "latency_ms_p50": inline["latency_ms_p50"],
        "latency_ms_p95": inline["latency_ms_p95"],
        "dropped_frames": sum(s["dropped_frames"] for s in inline["per_session"]),
        "batched_vs_sequential": batched["frames_per_s"] / sequential["frames_per_s"],
        "shm_vs_inline_delivery": (inline["delivery_ms_p50"] / shm["delivery_ms_p50"])
        if shm["delivery_ms_p50"]
        else None,
        "phases": phases,
    }


def register_serve(group: argparse._SubParsersAction) -> None:
    """Adds `bench serve` to the `bench` command group."""
    parser = group.add_parser(
        "serve",
        help="the gRPC daemon end to end: fps, latency, drops, batching and SHM ratios",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--sessions", type=int, default=2, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=5.0, help="media seconds per session")
    parser.add_argument(
        "--preset",
        default="tiny",
        help="preset for random weights; 'test-tiny' = the 32 px test model (fast)",
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--random-weights", action="store_true", help="ignore the checkpoint")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads "
        "(1 is often fastest on a busy machine: small ops oversubscribe)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from lpm_npc.errors import UserError

    if not 1 <= args.sessions <= 64:
        raise UserError(f"--sessions must be in [1, 64], got {args.sessions}")
    if not 0.5 <= args.seconds <= 600:
        raise UserError(f"--seconds must be in [0.5, 600], got {args.seconds}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    report = bench_serve(
        sessions=args.sessions,
        seconds=args.seconds,
        preset=args.preset,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if key != "phases":
            print(f"{key:>24}: {value}")
    return 0
