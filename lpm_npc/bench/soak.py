"""`lpm-npc bench soak`: N sessions talking to the daemon for M minutes; what breaks over time.

Each of `--sessions` client threads opens a session and plays speech utterances (real-time
paced, `--utterance-seconds` each, with a listen track) through Converse again and again on the
same session (every utterance reattaches), until `--minutes` have passed. A failed call is
counted under its status code, and the thread opens a fresh session and goes on.

Reported (`--json`), in total and per session:
- `frames_expected`: per session, the seq range the daemon numbered (first seq .. last seq seen;
  seq is continuous over reattaches, a shed or dropped chunk leaves a gap in it);
- `frames_received` (distinct seqs), `frames_lost` = expected - received, `out_of_order` (a seq
  below one already seen), `duplicated` (a seq seen twice);
- `rss_start_mb` / `rss_end_mb`: resident memory of this process (daemon and clients share it)
  after a warm-up of all N sessions at once (one utterance each, then closed) and at the end;
- `errors`: {status code name: count};
and per minute (by when a frame arrived): `latency_ms_p50` / `latency_ms_p95` of chunk inputs
complete -> frame received, `frames`, and `rss_mb` (sampled about once a minute, null in a
minute without a sample; so the slope of memory over the hour shows, not only its two ends).
Goal at the measured capacity for 60 minutes: 0 lost, 0 out of order, RSS growth <= 50 MB. This module measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lpm_npc.bench.generator import rss_mb
from lpm_npc.bench.serve import _audio
from lpm_npc.config import ServeConfig


@dataclass
class FrameTally:
    """Seq bookkeeping of one session (see the module docstring).

    A seq seen is one bit of a growing bytearray (an hour of frames is a few kB), so the
    bookkeeping itself does not show up in the RSS the soak measures.
    """

    bits: bytearray = field(default_factory=bytearray)
    received: int = 0
    first: int | None = None
    last: int | None = None
    out_of_order: int = 0
    duplicated: int = 0

    def add(self, seq: int) -> None:
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq}")
        byte, bit = divmod(seq, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))
        if self.bits[byte] >> bit & 1:
            self.duplicated += 1
            return
        if self.last is not None and seq < self.last:
            self.out_of_order += 1
        self.bits[byte] |= 1 << bit
        self.received += 1
        self.first = seq if self.first is None else min(self.first, seq)
        self.last = seq if self.last is None else max(self.last, seq)

    def report(self) -> dict:
        expected = 0 if self.first is None else self.last - self.first + 1
        return {
            "frames_expected": expected,
            "frames_received": self.received,
            "frames_lost": expected - self.received,
            "out_of_order": self.out_of_order,
            "duplicated": self.duplicated,
        }


def _percentile(values: array, q: float) -> float | None:
    return float(np.percentile(np.frombuffer(values, np.float32), q)) if values else None


def _warm_up(client, sessions: int, utterance_s: float) -> None:  # noqa: ANN001 - an LpmClient
    """All `sessions` at once, each one utterance with a listen track, on their own threads, then
    closed: so `rss_start` is taken with the working set of N concurrent sessions in place (the
    daemon's per-session caches, the client's per-stream buffers, a malloc arena per thread), and
    the soak's RSS growth is what an hour adds, not the step from one session to N."""
    from lpm_npc.serve.client import stream_conversation

    failures: list[BaseException] = []

    def warm(i: int) -> None:
        try:
            session = client.open_session("soak", seed=10_000 + i)
            stream_conversation(
                client,
                session,
                _audio(utterance_s, 900_000 + i),
                _audio(utterance_s, 950_000 + i),
                timeout=utterance_s * 10 + 60,
            )
            client.close_session(session.session_id)
        except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
            failures.append(error)

    threads = [threading.Thread(target=warm, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def bench_soak(
    *,
    sessions: int,
    minutes: float,
    preset: str = "tiny",
    checkpoint: str | None = None,
    random_weights: bool = False,
    utterance_s: float = 4.0,
    progress: bool = True,
) -> dict:
    """Run the soak (module docstring); a JSON-ready report."""
    import grpc

    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.serve.client import LpmClient, stream_conversation
    from lpm_npc.serve.server import ServerThread
    from lpm_npc.serve.testing import sheet_images

    generator = StreamingGenerator.from_checkpoint(
        checkpoint, random_weights=random_weights, allow_random=checkpoint is None, preset=preset
    )
    config = ServeConfig(max_sessions=max(sessions, ServeConfig().max_sessions))
    tallies: list[list[FrameTally]] = [[] for _ in range(sessions)]  # one per opened session
    errors: list[Counter] = [Counter() for _ in range(sessions)]
    latencies: dict[int, array] = {}  # minute -> float32 latencies, compact like the tallies
    rss_by_minute: dict[int, float] = {}
    lock = threading.Lock()
    with (
        tempfile.TemporaryDirectory() as store,
        ServerThread(generator=generator, store_dir=store, config=config) as server,
        LpmClient(server.address, timeout=120) as client,
    ):
        client.register_images("soak", sheet_images(seed=0))
        list(client.prepare("soak"))
        _warm_up(client, sessions, utterance_s)
        rss_start = rss_mb()
        started = time.monotonic()
        started_ns = time.time_ns()
        deadline = started + minutes * 60

        def on_frame(i: int, frame) -> None:  # noqa: ANN001 - a ReceivedFrame
            minute = int((frame.received_at_unix_ns - started_ns) // 60_000_000_000)
            latency_ms = (frame.received_at_unix_ns - frame.input_ready_unix_ns) / 1e6
            with lock:
                tallies[i][-1].add(frame.seq)
                latencies.setdefault(minute, array("f")).append(latency_ms)

        def play(i: int) -> None:
            session, utterance = None, 0
            while time.monotonic() < deadline:
                try:
                    if session is None:
                        session = client.open_session("soak", seed=i)
                        with lock:
                            tallies[i].append(FrameTally())  # a new session's seq starts anew
                    stream_conversation(
                        client,
                        session,
                        _audio(utterance_s, 1000 * i + utterance),
                        _audio(utterance_s, 1000 * i + utterance + 500),
                        on_frame=lambda f, i=i: on_frame(i, f),
                        timeout=utterance_s * 10 + 60,
                    )
                    utterance += 1
                except grpc.RpcError as error:
                    errors[i][error.code().name] += 1
                    session = None  # go on with a fresh session
                    time.sleep(0.5)
            if session is not None:
                try:
                    client.close_session(session.session_id)
                except grpc.RpcError as error:
                    errors[i][error.code().name] += 1

        threads = [threading.Thread(target=play, args=(i,)) for i in range(sessions)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=30)
            rss_by_minute[int((time.monotonic() - started) // 60)] = rss_mb()
            if progress:
                elapsed = (time.monotonic() - started) / 60
                with lock:
                    received = sum(t.received for ts in tallies for t in ts)
                print(f"bench soak: {elapsed:.1f} min, {received} frames", file=sys.stderr)
        rss_end = rss_mb()
    keys = list(FrameTally().report())
    per_session = []
    for i in range(sessions):
        reports = [t.report() for t in tallies[i]]
        counts = {key: sum(r[key] for r in reports) for key in keys}
        per_session.append(
            {"client": i, "sessions_opened": len(reports), **counts, "errors": dict(errors[i])}
        )
    totals = {key: sum(s[key] for s in per_session) for key in keys}
    all_errors: Counter = Counter()
    for counter in errors:
        all_errors.update(counter)
    totals.update(rss_start_mb=rss_start, rss_end_mb=rss_end, errors=dict(all_errors))
    per_minute = [
        {
            "minute": minute,
            "frames": len(values),
            "latency_ms_p50": _percentile(values, 50),
            "latency_ms_p95": _percentile(values, 95),
            "rss_mb": rss_by_minute.get(minute),
        }
        for minute, values in sorted(latencies.items())
    ]
    return {
        "model": generator.cfg.name,
        "sessions": sessions,
        "minutes": minutes,
        "utterance_seconds": utterance_s,
        "totals": totals,
        "per_session": per_session,
        "per_minute": per_minute,
    }


def register_soak(group: argparse._SubParsersAction) -> None:
    """Adds `bench soak` to the `bench` command group."""
    parser = group.add_parser(
        "soak",
        help="N sessions for M minutes: lost / out-of-order frames, latency per minute, memory",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--sessions", type=int, default=2, help="concurrent sessions")
    parser.add_argument("--minutes", type=float, default=60.0, help="how long (may be fractional)")
    parser.add_argument("--utterance-seconds", type=float, default=4.0, help="speech per stream")
    parser.add_argument("--preset", default="tiny", help="preset of random weights")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--random-weights", action="store_true", help="ignore the checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_soak)


def run_soak(args: argparse.Namespace) -> int:
    from lpm_npc.errors import UserError

    if not 1 <= args.sessions <= 64:
        raise UserError(f"--sessions must be in [1, 64], got {args.sessions}")
    if not 0 < args.minutes <= 24 * 60:
        raise UserError(f"--minutes must be in (0, 1440], got {args.minutes}")
    if not 0.5 <= args.utterance_seconds <= 60:
        raise UserError(f"--utterance-seconds must be in [0.5, 60], got {args.utterance_seconds}")
    from lpm_npc.bench.threads import set_torch_threads

    set_torch_threads(args.threads)
    report = bench_soak(
        sessions=args.sessions,
        minutes=args.minutes,
        preset=args.preset,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        utterance_s=args.utterance_seconds,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report["totals"].items():
        print(f"{key:>16}: {value}")
    for row in report["per_minute"]:
        print(
            f"minute {row['minute']:>3}: {row['frames']} frames, p50 {row['latency_ms_p50']:.0f} "
            f"ms, p95 {row['latency_ms_p95']:.0f} ms, rss {row['rss_mb']} MB"
        )
    return 0
