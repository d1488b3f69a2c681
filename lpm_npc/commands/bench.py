"""`lpm-npc bench ...`: performance benchmarks; one small function per subcommand.

`bench generator` takes the backend flags of `lpm_npc.onnx.backend` (`--backend torch|onnxruntime`,
`--onnx-export`, `--ort-threads`, `--ort-decoder`); with onnxruntime it also steps eager torch in
the same run and reports `onnxruntime_vs_torch`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="performance and quality benchmarks")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    register_generator(group)
    from lpm_npc.bench.serve import register_serve  # the daemon end to end (lazy grpc inside)

    register_serve(group)
    from lpm_npc.bench.soak import register_soak  # hours of sessions: losses, latency, memory

    register_soak(group)
    from lpm_npc.bench.quality_cli import register_quality  # LPM-Bench-synth (helper E)

    register_quality(group)
    register_kernels(group)
    register_train(group)


def register_train(group: argparse._SubParsersAction) -> None:
    parser = group.add_parser(
        "train",
        help="training throughput: latent dataset vs live rendering vs the bare DiT",
        description="Samples/s of one stage's step from the latent dataset, from live rendering "
        "and on an in-memory batch, in one run, with cache_vs_render and cache_vs_dit.",
    )
    parser.add_argument("--stage", default="base", choices=("base", "causal"))
    parser.add_argument(
        "--data", type=Path, default=None, help="latent dataset (default: build one)"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the stage's")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    import sys

    from lpm_npc.bench.train import as_dict, bench_train
    from lpm_npc.errors import UserError

    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    result = as_dict(
        bench_train(
            stage=args.stage,
            data_dir=args.data,
            checkpoint=args.checkpoint,
            batch_size=args.batch_size,
            steps=args.steps,
            threads=args.threads,
            progress=sys.stderr.isatty(),
        )
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def register_generator(group: argparse._SubParsersAction) -> None:
    parser = group.add_parser(
        "generator",
        help="real-time factor, first-frame latency and MFU of the streaming generator",
        description="Streams one session for --seconds of media and reports RTF "
        "(compute / media time), first-frame ms (open + first chunk), fps, MFU and RSS growth. "
        "With --backend onnxruntime an eager torch session of the same character, seed and audio "
        "is stepped in turn in the same run, and onnxruntime_vs_torch (chunk throughput ratio) "
        "and psnr_vs_torch_db are added.",
    )
    parser.add_argument("--preset", default="tiny", help="preset used when no checkpoint exists")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--seconds", type=float, default=10.0, help="media seconds to generate")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the DiT blocks (torch backend only)"
    )
    parser.add_argument("--size", type=int, default=None, help="output frame side, px")
    parser.add_argument("--device", default="cpu", help="device (cpu, cuda)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    from lpm_npc.onnx.backend import add_backend_arguments

    add_backend_arguments(parser)
    parser.set_defaults(func=run_generator)


def run_generator(args: argparse.Namespace) -> int:
    import sys

    from lpm_npc.bench.generator import as_dict, bench_generator
    from lpm_npc.errors import UserError
    from lpm_npc.onnx.backend import BackendChoice

    if args.seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")
    backend = BackendChoice.from_args(args)
    backend.check(device=args.device, compile=args.compile, dtype=args.dtype)
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
        backend=backend,
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


def register_kernels(group: argparse._SubParsersAction) -> None:
    parser = group.add_parser(
        "kernels",
        help="TFLOP/s of the fused streaming-attention kernel vs SDPA with its copies and Flex",
        description="Times one layer of streaming attention at the tiny / small / lpm-17b head "
        "shapes: the Triton kernel, SDPA on roped and concatenated K/V (with the rope and "
        "concatenation), SDPA alone, FlexAttention. Needs a CUDA device; without one it says so "
        "and exits 0. --compile-check lowers the kernels for sm_90 on any machine.",
    )
    parser.add_argument("--preset", action="append", choices=("tiny", "small", "lpm-17b"))
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--no-flex", action="store_true", help="skip FlexAttention")
    parser.add_argument(
        "--compile-check", action="store_true", help="compile for sm_90 (no GPU needed) and stop"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_kernels)


def run_kernels(args: argparse.Namespace) -> int:
    from lpm_npc.errors import UserError

    if args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    if args.compile_check:
        from lpm_npc.kernels import aot  # needs triton and TRITON_INTERPRET unset

        data = [
            aot.compile_streaming_attention("lpm-17b", args.dtype).as_dict(),
            aot.compile_ring_write("lpm-17b", args.dtype).as_dict(),
        ]
        print(json.dumps(data, indent=2) if args.json else "\n".join(map(str, data)))
        return 0
    from lpm_npc.bench.kernels import PRESETS, bench_kernels, format_report

    report = bench_kernels(
        tuple(args.preset or PRESETS), args.dtype, flex=not args.no_flex, iters=args.iters
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0
