"""`lpm-npc synth ...`: the procedural world (characters, sheets, speech, conversations).

Each subcommand is added by one small `_register_*` function; heavy imports happen in handlers.
"""

from __future__ import annotations

import argparse
import json

from lpm_npc.commands.synth_conversation import register_conversation_commands


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="procedural characters, speech and conversations")
    group = parser.add_subparsers(dest="synth_command", metavar="SYNTH_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    _register_character(group)
    _register_bench(group)
    register_conversation_commands(group)  # visemes, conversation (helper B)


def _register_character(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "character",
        help="render a procedural character's reference sheet (global, 4 views, expressions)",
        description="Render the reference sheet of the character drawn from --seed into --out "
        "(sheet.toml + PNGs, written atomically) and print the folder path.",
    )
    p.add_argument("--seed", type=int, default=0, help="character seed (0 .. 2**63-1)")
    p.add_argument("--size", type=int, default=128, help="image side, 64 .. 512 px")
    p.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    p.add_argument("--name", default=None, help="sheet name (default character-<seed>)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_character)


def _character(args: argparse.Namespace) -> int:
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.sheet import render_sheet, write_sheet

    spec = CharacterSpec.from_seed(args.seed)
    sheet = render_sheet(spec, args.size, name=args.name)
    path = write_sheet(sheet, args.out)
    if args.json:
        summary = {
            "path": str(path),
            "name": sheet.name,
            "seed": spec.seed,
            "size": args.size,
            "images": [
                {"file": im.file_name, "role": im.role, "label": im.label} for im in sheet.images
            ],
            "attributes": spec.identity_attributes(),
        }
        print(json.dumps(summary, indent=2))
    else:
        print(path)
    return 0


def _register_bench(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "bench",
        help="renderer throughput (frames/s on one core)",
        description="Render --frames frames of varied motion for each of --characters characters "
        "and report frames per CPU-second (one thread) and per wall-second.",
    )
    p.add_argument("--size", type=int, default=128, help="frame side, 64 .. 512 px")
    p.add_argument("--frames", type=int, default=96, help="frames per character")
    p.add_argument("--characters", type=int, default=4, help="characters rendered")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from lpm_npc.synth.render import benchmark

    try:  # the renderer is numpy-only; keep torch (if a caller loaded it) on one thread too
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    result = benchmark(args.size, args.frames, args.characters)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['frames_per_s']} frames/s per CPU core "
            f"({result['wall_frames_per_s']} wall), {result['frames']} frames at {args.size} px"
        )
    return 0
