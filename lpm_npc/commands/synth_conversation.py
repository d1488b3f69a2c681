"""`lpm-npc synth visemes` and `lpm-npc synth conversation`: speech analysis and conversation clips.

Registered into the `synth` group by `commands/synth.py`; heavy imports happen in the handlers.
"""

from __future__ import annotations

import argparse
import json


def register_conversation_commands(group: argparse._SubParsersAction) -> None:
    """Add the `visemes` and `conversation` subcommands to the `synth` group."""
    _register_visemes(group)
    _register_conversation(group)


def _register_visemes(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "visemes",
        help="per-frame jaw_open / lip_round / lip_spread of any 16 kHz speech wav",
        description="Analyse a speech WAV (babble, TTS or recorded) into visemes at 24 fps.",
    )
    p.add_argument("--audio", required=True, help="WAV file (16 kHz mono unless --resample)")
    p.add_argument(
        "--resample",
        action="store_true",
        help="accept any rate/channels and convert to 16 kHz mono",
    )
    p.add_argument("--json", action="store_true", help="print the full per-frame curves as JSON")
    p.set_defaults(func=_visemes)


def _visemes(args: argparse.Namespace) -> int:
    import numpy as np

    from lpm_npc.synth.audio_io import read_wav
    from lpm_npc.synth.visemes import visemes_from_audio

    vis = visemes_from_audio(read_wav(args.audio, resample=args.resample))
    if args.json:
        print(json.dumps(vis.to_json()))
        return 0
    print(f"{args.audio}: {vis.n_frames} frames at {vis.fps} fps")
    for name in ("jaw_open", "lip_round", "lip_spread"):
        curve = getattr(vis, name)
        mean = float(np.mean(curve)) if len(curve) else 0.0
        peak = float(np.max(curve)) if len(curve) else 0.0
        print(f"  {name:10s} mean {mean:.3f}  max {peak:.3f}")
    return 0


def _register_conversation(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "conversation",
        help="direct and render a two-party conversation clip (babble, or given audio)",
        description=(
            "Write speak.wav, listen.wav, motion.npz, script.json and video.mp4 of a directed "
            "NPC/player conversation into --out. With --speak/--listen the NPC performs the given "
            "tracks (lip-sync to --speak, listening to --listen) instead of babble."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="conversation (and default character) seed")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="babble clip length, s (0.5..3600; default 10); given tracks set their own length",
    )
    p.add_argument("--speak", default=None, help="the NPC's voice: a WAV (any rate/channels)")
    p.add_argument("--listen", default=None, help="the player's voice: a WAV (any rate/channels)")
    p.add_argument(
        "--turns",
        default=None,
        help='JSON list of {"speaker": "npc"|"player", "start_s", "end_s"} (default: from audio)',
    )
    p.add_argument("--size", type=int, default=128, help="frame side, px (even, 64..512)")
    p.add_argument(
        "--character", default=None, help="designer sheet folder; its seed picks the look"
    )
    p.add_argument(
        "--prompt",
        default=None,
        help='emotion/style words, e.g. "cheerful nervous" (default: random)',
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the path")
    p.set_defaults(func=_conversation)


def _conversation(args: argparse.Namespace) -> int:
    import sys

    from lpm_npc.synth.conversation import make_conversation_clip, make_tracks_clip

    progress = sys.stderr.isatty()
    if args.speak is not None or args.listen is not None:
        if args.seconds is not None:
            raise ValueError("--seconds applies to babble only; given tracks set the length")
        summary = make_tracks_clip(
            args.speak,
            args.listen,
            args.size,
            args.out,
            turns_path=args.turns,
            character_dir=args.character,
            seed=args.seed,
            prompt=args.prompt,
            progress=progress,
        )
    else:
        if args.turns is not None:
            raise ValueError("--turns needs --speak and/or --listen tracks")
        summary = make_conversation_clip(
            args.seed,
            10.0 if args.seconds is None else args.seconds,
            args.size,
            args.out,
            character_dir=args.character,
            prompt=args.prompt,
            progress=progress,
        )
    print(json.dumps(summary.to_json()) if args.json else str(summary.out_dir))
    return 0
