"""`lpm-npc bench serve`: the daemon measured end to end, through gRPC, in one run.

For every session count asked for (`--sessions 1,2,4`), four phases on one generator, each against
a fresh in-process daemon on a free port:

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

`rss_per_session_mb`: during phase 1, (peak RSS - RSS before the sessions opened) / N, with the
daemon warm and the character prepared; freed heap is returned to the OS first (`malloc_trim`,
glibc), so memory an earlier count freed does not hide this count's growth.

The report is `{"model", "image_size", "seconds", "threads", "runs": [{"sessions": N, ...}]}`.
The numbers are ratios measured in the same process on the same machine (DESIGN.md §6); the
absolute fps depend on the preset, the checkpoint and what else the CPU is doing.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from lpm_npc.bench.generator import rss_mb
from lpm_npc.config import SAMPLE_RATE, ServeConfig
from lpm_npc.engine.protocol import ChunkGenerator


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


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc; elsewhere only the collection)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _PeakRss:
    """Samples this process's RSS every 50 ms in a thread; `peak_mb` after `stop()`."""

    def __init__(self) -> None:
        self.peak_mb = rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
        return self.peak_mb


def _run_phase(
    generator: ChunkGenerator,
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
        _release_free_memory()
        rss_before = rss_mb()
        memory = _PeakRss()
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
        rss_peak = memory.stop()
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
        "rss_per_session_mb": (rss_peak - rss_before) / sessions,
    }


def _measure(
    generator: ChunkGenerator,
    sessions: int,
    seconds: float,
    say: Callable[[str], None],
) -> dict:
    """The four phases (module docstring) at one session count -> one entry of `runs`."""
    # Behaviour under overload is part of the measurement: keep the default degradation policy
    # in the paced phases; throughput phases lift the pacing so the generator never waits.
    paced = ServeConfig(max_sessions=max(8, sessions))
    unpaced = replace(paced, max_lead_chunks=10**6, degrade_lag_chunks=1e9, shed_lag_chunks=1e9)
    plan = [
        ("realtime_inline", paced, "inline", False),
        ("realtime_shm", paced, "shm", False),
        ("throughput_batched", unpaced, "inline", True),
        ("throughput_sequential", replace(unpaced, max_batch=1), "inline", True),
    ]
    phases = {}
    for name, config, delivery, fast in plan:
        say(f"bench serve: {name} ({sessions} sessions x {seconds:g} s)")
        phases[name] = _run_phase(
            generator, config, sessions=sessions, seconds=seconds, delivery=delivery, fast=fast
        )
    inline, shm = phases["realtime_inline"], phases["realtime_shm"]
    batched, sequential = phases["throughput_batched"], phases["throughput_sequential"]
    return {
        "sessions": sessions,
        "per_session_fps": [s["fps"] for s in inline["per_session"]],
        "latency_ms_p50": inline["latency_ms_p50"],
        "latency_ms_p95": inline["latency_ms_p95"],
        "dropped_frames": sum(s["dropped_frames"] for s in inline["per_session"]),
        "batched_vs_sequential": batched["frames_per_s"] / sequential["frames_per_s"],
        "shm_vs_inline_delivery": (inline["delivery_ms_p50"] / shm["delivery_ms_p50"])
        if shm["delivery_ms_p50"]
        else None,
        "rss_per_session_mb": inline["rss_per_session_mb"],
        "phases": phases,
    }


def bench_serve(
    *,
    sessions: Sequence[int],
    seconds: float,
    preset: str = "tiny",
    checkpoint: str | None = None,
    random_weights: bool = False,
    progress: bool = True,
) -> dict:
    """Measure every session count in `sessions` (module docstring); a JSON-ready report."""
    import torch

    from lpm_npc.engine.generator import StreamingGenerator

    generator = StreamingGenerator.from_checkpoint(
        checkpoint,
        random_weights=random_weights,
        allow_random=checkpoint is None,
        preset=preset,
    )

    def say(line: str) -> None:
        if progress:
            print(line, file=sys.stderr)

    say("bench serve: warmup (1 session x 1 s)")
    _run_phase(generator, ServeConfig(), sessions=1, seconds=1.0, delivery="inline", fast=False)
    return {
        "model": generator.cfg.name,
        "image_size": generator.cfg.image_size,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "runs": [_measure(generator, n, seconds, say) for n in sessions],
    }


def _session_counts(text: str) -> list[int]:
    """Parse "1,2,4" into [1, 2, 4] (argparse type)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--sessions takes comma-separated integers such as 1,2,4, got {text!r}"
        ) from error
    if not counts or any(not 1 <= n <= 64 for n in counts):
        raise argparse.ArgumentTypeError(f"--sessions: each count must be in [1, 64], got {text!r}")
    return counts


def register_serve(group: argparse._SubParsersAction) -> None:
    """Adds `bench serve` to the `bench` command group."""
    parser = group.add_parser(
        "serve",
        help="the gRPC daemon end to end: fps, latency, drops, batching, SHM and memory ratios",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--sessions",
        type=_session_counts,
        default=[1, 2, 4],
        help="concurrent session counts, each measured in turn (default 1,2,4)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="media seconds per session")
    parser.add_argument(
        "--preset",
        default="tiny",
        help="preset of random weights (with --random-weights or without a checkpoint); "
        "'test-tiny' = the 32 px test model (fast)",
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

    if not 0.5 <= args.seconds <= 600:
        raise UserError(f"--seconds must be in [0.5, 600], got {args.seconds}")
    from lpm_npc.bench.threads import set_torch_threads

    set_torch_threads(args.threads)
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
    for key in ("model", "image_size", "seconds", "threads"):
        print(f"{key:>24}: {report[key]}")
    for run in report["runs"]:
        print(f"--- {run['sessions']} session(s)")
        for key, value in run.items():
            if key not in ("sessions", "phases"):
                print(f"{key:>24}: {value}")
    return 0
