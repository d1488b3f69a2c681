"""`lpm-npc bench quality`: LPM-Bench-synth on held-out characters (definitions: `bench.quality`)."""

from __future__ import annotations

import argparse


def register_quality(group: argparse._SubParsersAction) -> None:
    parser = group.add_parser(
        "quality",
        help="LPM-Bench-synth: lip-sync, listening, identity, drift, text control at every rung "
        "(truth, vae, teacher, student)",
        description="Quality of a checkpoint on held-out characters, scored by its judge. "
        "Metric definitions: lpm_npc/bench/quality.py.",
    )
    parser.add_argument("--suite", choices=("quick", "full"), default="quick")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_quality_command)


def run_quality_command(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sys

    from lpm_npc.bench.quality import RUNG_METRICS, RUNGS, run_quality

    report = run_quality(
        args.checkpoint, args.suite, device=args.device, progress=sys.stderr.isatty()
    )
    data = dataclasses.asdict(report)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key, value in data.items():
        if key not in ("notes", "rungs"):
            print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    print(f"\n{'ceiling ladder':28s}" + "".join(f"{name:>10s}" for name in RUNGS))
    for metric in RUNG_METRICS:
        cells = [report.rungs[name][metric] for name in RUNGS]
        print(
            f"{metric:28s}" + "".join(f"{'-':>10s}" if v is None else f"{v:10.4g}" for v in cells)
        )
    for note in report.notes:
        print(f"note: {note}")
    return 0
