"""`lpm-npc info`: model size and per-chunk cost of a preset (built on the meta device)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="parameter counts and per-chunk FLOPs of a model preset",
        description="Parameter counts (meta device, no memory) and analytic per-chunk FLOPs.",
    )
    parser.add_argument(
        "--preset", default="tiny", help="model preset (tiny, small, lpm-17b, test)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from lpm_npc.bench.generator import model_info
    from lpm_npc.config import ModelConfig

    info = model_info(ModelConfig.from_name(args.preset))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, int) and value >= 10_000:
            value = f"{value:,}"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:>28}: {value}")
    return 0
