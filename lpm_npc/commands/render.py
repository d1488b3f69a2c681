"""`lpm-npc render`: offline generation of one character speaking / listening to WAV tracks.

    lpm-npc render --character samples/characters/ada --speak npc.wav --listen player.wav \
        --prompt cheerful --out out.mp4 [--frames DIR] [--json stats.json] \
        [--backend torch|onnxruntime] [--onnx-export DIR] [--ort-threads N] [--ort-decoder D]

Runs the streaming generator chunk by chunk (the daemon's path) and writes an MP4 with both
tracks mixed in; `--frames` also writes PNG frames, `--json` generation statistics. The backend
flags (`lpm_npc.onnx.backend`, docs/onnx.md) pick eager torch (default) or the onnxruntime graphs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a character speaking and listening to WAV tracks into an MP4",
        description="Offline generation with the streaming generator (eager torch, or the "
        "exported graphs in onnxruntime with --backend onnxruntime).",
    )
    parser.add_argument("--character", type=Path, required=True, help="reference sheet dir")
    parser.add_argument("--speak", type=Path, required=True, help="NPC speech, 16 kHz mono WAV")
    parser.add_argument("--listen", type=Path, default=None, help="player speech WAV (optional)")
    parser.add_argument("--prompt", default="", help='style / emotion, e.g. "cheerful"')
    parser.add_argument("--seconds", type=float, default=None, help="length (default: tracks)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--size", type=int, default=None, help="output frame side, px")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--resample", action="store_true", help="accept WAVs at other rates")
    parser.add_argument("--out", type=Path, required=True, help="output .mp4")
    parser.add_argument("--frames", type=Path, default=None, help="also write PNG frames here")
    parser.add_argument("--json", type=Path, default=None, metavar="STATS", help="stats json")
    from lpm_npc.onnx.backend import add_backend_arguments

    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sys

    import numpy as np

    from lpm_npc.bench.offline import RenderJob, mix_tracks, render_jobs
    from lpm_npc.config import FPS, SAMPLES_PER_FRAME
    from lpm_npc.onnx.backend import BackendChoice, make_generator
    from lpm_npc.synth.audio_io import read_wav
    from lpm_npc.synth.sheet import load_sheet, sheet_to_array
    from lpm_npc.synth.video_io import write_mp4

    if args.seconds is not None and args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must end in .mp4, got {args.out}")
    backend = BackendChoice.from_args(args)
    backend.check(device=args.device)
    sheet = load_sheet(args.character)
    speak = read_wav(args.speak, resample=args.resample)
    listen = read_wav(args.listen, resample=args.resample) if args.listen else None
    generator = make_generator(backend, checkpoint=args.checkpoint, device=args.device)
    images, roles = sheet_to_array(sheet, generator.cfg.image_size)
    job = RenderJob(
        character=generator.prepare(images, roles, name=sheet.name),
        speak=speak,
        listen=listen if listen is not None else np.zeros(0, np.float32),
        prompt=args.prompt,
        seed=args.seed,
    )
    (frames,), stats = render_jobs(
        generator, [job], seconds=args.seconds, size=args.size, progress=sys.stderr.isatty()
    )
    n = stats.frames * SAMPLES_PER_FRAME
    audio = mix_tracks(speak[:n], None if listen is None else listen[:n])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(args.out, frames, FPS, audio=audio)
    if args.frames is not None:
        from PIL import Image

        args.frames.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(args.frames / f"frame_{i:06d}.png")
    payload = dataclasses.asdict(stats)
    payload["chunk_ms_mean"] = float(np.mean(stats.chunk_ms)) if stats.chunk_ms else 0.0
    payload.pop("chunk_ms")
    payload.update(
        out=str(args.out), character=sheet.name, prompt=args.prompt, backend=backend.backend
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    print(
        f"{args.out}: {stats.frames} frames, {stats.media_s:.2f} s media in "
        f"{stats.compute_s:.2f} s (RTF {stats.rtf:.2f})"
    )
    return 0
