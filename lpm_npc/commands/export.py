"""`lpm-npc export onnx`: the streaming step of a checkpoint as ONNX graphs + a manifest.

    lpm-npc export onnx [--checkpoint DIR] --out DIR [--quantize-decoder int8|fp16] [--json]
    lpm-npc export onnx --random-weights --preset test --out DIR

Writes audio.onnx, backbone.onnx, refiner.onnx, decoder.onnx and manifest.json into --out
(`lpm_npc.onnx.export`; docs/onnx.md describes every input and output). Needs the `[onnx]` extra
(onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export the model for other runtimes")
    group = parser.add_subparsers(dest="export_command", metavar="EXPORT_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    onnx = group.add_parser(
        "onnx",
        help="ONNX graphs of the streaming step (audio, backbone, refiner, decoder)",
        description="Exports the audio encoder step, the backbone's streaming chunk pass, the "
        "refiner and the streaming VAE decode step, each with its caches as named inputs and "
        "outputs and a dynamic batch, plus manifest.json (names, shapes, dtypes, checkpoint "
        "sha256).",
    )
    onnx.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    onnx.add_argument(
        "--random-weights",
        action="store_true",
        help="skip the checkpoint: random weights of --preset (tests, smoke runs)",
    )
    onnx.add_argument("--preset", default="tiny", help="preset for random weights")
    onnx.add_argument("--out", type=Path, required=True, help="output directory")
    onnx.add_argument(
        "--quantize-decoder",
        choices=("int8", "fp16"),
        action="append",
        default=[],
        help="also write decoder.<variant>.onnx (repeatable; see docs/onnx.md for quality)",
    )
    onnx.add_argument("--json", action="store_true", help="print the manifest as JSON")
    onnx.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    from lpm_npc.engine.weights import (
        CONFIG_FILE,
        WEIGHTS_FILE,
        checkpoint_exists,
        default_checkpoint_dir,
        load_lpm,
    )
    from lpm_npc.errors import UserError

    try:
        from lpm_npc.digest import file_sha256
        from lpm_npc.onnx.export import export_onnx
        from lpm_npc.onnx.quantize import write_decoder_variant
    except ImportError as error:
        raise UserError(f"{error.name} is missing: pip install 'lpm-npc[onnx]'") from error

    if args.random_weights and args.checkpoint is not None:
        raise UserError("--random-weights and --checkpoint exclude each other")
    if args.random_weights:
        cfg, model = load_lpm(random_weights=True, preset=args.preset)
        config = {"preset": args.preset, "overrides": {}}
        sha = None
    else:
        directory = args.checkpoint or default_checkpoint_dir()
        if not checkpoint_exists(directory):
            raise UserError(
                f"--checkpoint: no checkpoint at {directory} (need {CONFIG_FILE} and "
                f"{WEIGHTS_FILE}); use --random-weights for a smoke export"
            )
        cfg, model = load_lpm(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        sha = file_sha256(directory / WEIGHTS_FILE)
    manifest = export_onnx(model, args.out, config=config, checkpoint_sha256=sha)
    for variant in dict.fromkeys(args.quantize_decoder):
        write_decoder_variant(args.out, variant, model=model)
    if args.json:
        print(json.dumps(dataclasses.asdict(manifest), indent=2))
    else:
        logging.getLogger(__name__).info("exported %s to %s", cfg.name, args.out)
        for name, graph in manifest.graphs.items():
            print(f"{name:>9}: {args.out / graph.file}")
    return 0
