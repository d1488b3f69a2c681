"""`lpm-npc bench ...`: performance benchmarks; one small function per subcommand."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="performance and quality benchmarks")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    register_generator(group)
    from lpm_npc.bench.serve import register_serve  # the daemon end to end (lazy grpc inside)

    register_serve(group)
    from lpm_npc.bench.quality_cli import register_quality  # LPM-Bench-synth (helper E)

    register_quality(group)


def register_generator(group: argparse._SubParsersAction) -> None:
    parser = group.add_parser(
        "generator",
        help="real-time factor, first-frame latency and MFU of the streaming generator",
        description="Streams one session for --seconds of media and reports RTF "
        "(compute / media time), first-frame ms (open + first chunk), fps, MFU and RSS growth.",
    )
    parser.add_argument("--preset", default="tiny", help="preset used when no checkpoint exists")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--seconds", type=float, default=10.0, help="media seconds to generate")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks")
    parser.add_argument("--size", type=int, default=None, help="output frame side, px")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_generator)


def run_generator(args: argparse.Namespace) -> int:
    import sys

    from lpm_npc.bench.generator import as_dict, bench_generator
    from lpm_npc.errors import UserError

    if args.seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")
    result = bench_generator(
        preset=args.preset,
        checkpoint=args.checkpoint,
        seconds=args.seconds,
        threads=args.threads,
        dtype=args.dtype,
        compile=args.compile,
        size=args.size,
        device=args.device,
        progress=sys.stderr.isatty(),
    )
    if result.checkpoint == "random":
        print("no checkpoint; using random weights", file=sys.stderr)
    data = as_dict(result)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key, value in data.items():
        print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
    return 0
