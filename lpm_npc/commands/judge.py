"""`lpm-npc judge`: read motion parameters back from every frame of a video with the judge network.

    lpm-npc judge --video out.mp4 --json
    -> {"fps", "n_frames", "jaw_open": [...], "blink": [...], "brow_raise": [...],
        "head_pitch": [...], "head_yaw": [...], "smile": [...], "expression": [...]}

    lpm-npc judge --calibrate --json [--judge FILE] [--checkpoint DIR] [--vae FILE]
    -> {"channels": {"jaw_open": {"truth_r", "vae_r"}, "head_pitch": ..., ...},
        "expression": {"truth_acc", "vae_acc"}, "goals_met": {...}, "cases": [...], ...}

Units: jaw_open, blink (1 = closed), brow_raise, smile in [0, 1]; head_pitch / head_yaw in degrees.
The judge weights are `judge.safetensors` in the checkpoint directory (default: embedded tiny), or
`--judge FILE`. Calibration (definitions: `lpm_npc.judge.calibrate`) reads held-out characters'
truth renders and their round-trips through the checkpoint's VAE (or the `vae.*` tensors of
`--vae FILE`, e.g. a `vae` stage's final.safetensors, in the checkpoint's model shape).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "judge",
        help="read jaw, blink, brow, head pose, smile and expression from each frame of a video",
        description="Score a video with the judge network (per-frame motion readings).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--video", type=Path, help="input video (.mp4)")
    which.add_argument(
        "--calibrate", action="store_true", help="measure the judge on held-out truth renders"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    parser.add_argument("--judge", type=Path, default=None, help="judge weights (.safetensors)")
    parser.add_argument(
        "--vae", type=Path, default=None, help="calibration: LPM weights whose VAE to use"
    )
    parser.add_argument("--characters", type=int, default=6, help="calibration: characters")
    parser.add_argument("--seconds", type=float, default=12.0, help="calibration: s per character")
    parser.add_argument(
        "--text-seconds", type=float, default=3.0, help="calibration: s per prompted clip"
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--json", action="store_true", help="print per-frame readings as json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.judge.reader import READ_FIELDS, load_judge
    from lpm_npc.synth.video_io import read_mp4

    checkpoint = args.checkpoint or default_checkpoint_dir()
    if args.judge is not None and not args.judge.is_file():
        raise FileNotFoundError(f"--judge {args.judge}: no such file")
    judge = load_judge(args.judge or checkpoint, device=args.device)
    if args.calibrate:
        return _calibrate(args, judge, checkpoint)
    if not args.video.is_file():
        raise FileNotFoundError(f"--video {args.video}: no such file")
    frames, fps = read_mp4(args.video)
    reading = judge.read(frames)
    payload = reading.to_json(fps=float(fps))
    if args.json:
        print(json.dumps(payload))
        return 0
    print(f"{args.video}: {payload['n_frames']} frames at {fps:g} fps")
    for name in READ_FIELDS:
        values = np.asarray(payload[name], np.float32)
        if len(values):
            print(
                f"  {name:10s} mean {values.mean():7.3f}  min {values.min():7.3f}  max {values.max():7.3f}"
            )
    return 0


def _calibrate(args: argparse.Namespace, judge, checkpoint: Path) -> int:
    import json

    from lpm_npc.engine.weights import WEIGHTS_FILE, read_config
    from lpm_npc.judge.calibrate import calibrate
    from lpm_npc.model.vae import load_frozen_vae

    if args.characters < 1:
        raise ValueError(f"--characters must be >= 1, got {args.characters}")
    if not 1.0 <= args.seconds <= 600.0:
        raise ValueError(f"--seconds must be in [1, 600], got {args.seconds}")
    if not 1.0 <= args.text_seconds <= 60.0:
        raise ValueError(f"--text-seconds must be in [1, 60], got {args.text_seconds}")
    if args.vae is not None and not args.vae.is_file():
        raise FileNotFoundError(f"--vae {args.vae}: no such file")
    cfg = read_config(checkpoint)
    vae = load_frozen_vae(args.vae or checkpoint / WEIGHTS_FILE, cfg).to(args.device)
    result = calibrate(
        judge,
        vae,
        cfg.image_size,
        n_characters=args.characters,
        seconds=args.seconds,
        text_seconds=args.text_seconds,
    )
    result["judge"] = str(args.judge or checkpoint)
    result["vae"] = str(args.vae or checkpoint / WEIGHTS_FILE)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    def cell(value: float | None) -> str:
        return "     -" if value is None else f"{value:6.3f}"

    print("channel     truth_r  vae_r  (all: truth_r  vae_r)  scored  hidden (character seeds)")
    for name, v in result["channels"].items():
        hidden = ", ".join(str(seed) for seed in v["hidden"]) or "-"
        print(
            f"{name:11s} {cell(v['truth_r'])} {cell(v['vae_r'])}       {cell(v['truth_r_all'])} "
            f"{cell(v['vae_r_all'])}  {v['scored']:6d}  {hidden}"
        )
    expression = result["expression"]
    print(
        f"expression  truth_acc {expression['truth_acc']:.3f}  vae_acc {expression['vae_acc']:.3f}"
    )
    failed = [k for k, ok in result["goals_met"].items() if not ok]
    print("goals met" if not failed else f"goals not met: {', '.join(failed)}")
    return 0
