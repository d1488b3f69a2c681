"""`lpm-npc data build|info`: the latent dataset the LPM training stages read.

    lpm-npc data build --out runs/data/tiny [--vae FILE] [--characters N]
                       [--conversations-per-character K] [--seconds-per-conversation S] [--workers W]
    lpm-npc data info DIR [--json]

`build` renders the training world once in worker processes (progress bar, resumable: run the same
command again after a kill) and stores VAE latents, reference latents, both audio tracks, motion
truth, prompts and face boxes memory-mapped (layout: `lpm_npc/train/latent_data.py`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build or inspect the latent training dataset",
        description="Render and VAE-encode the training world once, memory-mapped.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser(
        "build",
        help="render + encode the training world (resumable)",
        description="Build (or resume) a latent dataset; defaults measured on the 2-core CPU.",
    )
    build.add_argument("--out", type=Path, required=True, help="dataset directory")
    build.add_argument(
        "--vae",
        type=Path,
        default=None,
        help="safetensors with the LPM's `vae.*` weights (default: the embedded default model)",
    )
    build.add_argument("--preset", default="tiny", help="model preset (shapes; default tiny)")
    build.add_argument("--data-seed", type=int, default=1, help="draws the character pool")
    build.add_argument("--characters", type=int, default=256, help="training identities")
    build.add_argument(
        "--conversations-per-character", type=int, default=2, help="conversations per identity"
    )
    build.add_argument(
        "--seconds-per-conversation", type=float, default=15.0, help="length of each conversation"
    )
    build.add_argument("--workers", type=int, default=2, help="worker processes")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.add_argument("--json", action="store_true", help="print the manifest summary as json")
    build.set_defaults(func=run_build)
    info = sub.add_parser(
        "info", help="summarise a dataset", description="Print a dataset summary."
    )
    info.add_argument("dir", type=Path, help="dataset directory")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=run_info)


def _summary(raw: dict) -> dict:
    keys = (
        "status",
        "preset",
        "vae_sha256",
        "vae_encoder_sha256",
        "data_seed",
        "frames_per_conversation",
        "latent_frames_per_conversation",
        "build_seconds_last_session",
        "disk_bytes",
    )
    out = {k: raw.get(k) for k in keys}
    out["characters"] = len(raw.get("character_seeds", []))
    out["conversations"] = len(raw.get("conversations", []))
    return out


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")


def run_build(args: argparse.Namespace) -> int:
    from lpm_npc.errors import UserError
    from lpm_npc.train.latent_build import BuildOptions, build_latent_dataset

    for name in ("characters", "conversations_per_character", "workers"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 1.0 <= args.seconds_per_conversation <= 600.0:
        raise UserError(
            f"--seconds-per-conversation must be in [1, 600], got {args.seconds_per_conversation}"
        )
    vae = args.vae
    if vae is None:
        from lpm_npc.engine.weights import default_checkpoint_dir

        vae = default_checkpoint_dir() / "model.safetensors"
    opts = BuildOptions(
        out_dir=args.out,
        vae_path=vae,
        preset=args.preset,
        data_seed=args.data_seed,
        n_characters=args.characters,
        conversations_per_character=args.conversations_per_character,
        seconds_per_conversation=args.seconds_per_conversation,
        workers=args.workers,
    )
    raw = build_latent_dataset(opts, progress=not args.no_progress)
    _print(_summary(raw), args.json)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from lpm_npc.train.latent_data import read_manifest

    raw = read_manifest(args.dir, require_complete=False).raw
    _print(_summary(raw), args.json)
    return 0
