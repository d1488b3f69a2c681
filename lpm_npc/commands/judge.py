"""`lpm-npc judge`: read motion parameters back from every frame of a video with the judge network.

    lpm-npc judge --video out.mp4 --json
    -> {"fps", "n_frames", "jaw_open": [...], "blink": [...], "brow_raise": [...],
        "head_pitch": [...], "head_yaw": [...], "smile": [...], "expression": [...]}

Units: jaw_open, blink (1 = closed), brow_raise, smile in [0, 1]; head_pitch / head_yaw in degrees.
The judge weights are `judge.safetensors` in the checkpoint directory (default: embedded tiny).
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
    parser.add_argument("--video", type=Path, required=True, help="input video (.mp4)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--json", action="store_true", help="print per-frame readings as json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from lpm_npc.engine.weights import default_checkpoint_dir
    from lpm_npc.judge.reader import READ_FIELDS, load_judge
    from lpm_npc.synth.video_io import read_mp4

    if not args.video.is_file():
        raise FileNotFoundError(f"--video {args.video}: no such file")
    judge = load_judge(args.checkpoint or default_checkpoint_dir(), device=args.device)
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
