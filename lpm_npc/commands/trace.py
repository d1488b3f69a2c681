"""`lpm-npc trace inspect|replay|compare|export|golden`: dialogue traces (docs/trace-format.md).

- `inspect TRACE [--json]` — header and record counts.
- `replay TRACE [--checkpoint DIR] [--tolerance DB] [--json]` — re-run the generator offline and
  check every frame digest; exit status 1 on any mismatch. `--json` prints
  `{"frames": n, "mismatches": m, "first_mismatch": seq_or_null}`.
- `compare A B --out DIR` — two traces, or one trace against a checkpoint (`--checkpoint`):
  `DIR/compare.json` and `DIR/compare.html`, naming the first differing frame.
- `export TRACE --out X.mp4` — replay and write the frames as a video with the trace's audio.
- `golden --out samples/traces` — regenerate the golden traces (after the default checkpoint
  changes).
"""

from __future__ import annotations

import argparse
import json
import sys

from lpm_npc.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="inspect, replay, compare and export recorded dialogue traces",
        description="Dialogue traces: record / replay / diff a character's performance.",
    )
    group = parser.add_subparsers(dest="trace_command", metavar="TRACE_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)

    inspect = group.add_parser("inspect", help="show a trace's header and record counts")
    inspect.add_argument("trace")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=run_inspect)

    replay = group.add_parser("replay", help="re-run a trace offline; exit 1 on a frame mismatch")
    replay.add_argument("trace")
    replay.add_argument("--checkpoint", default=None, help="checkpoint dir (default: the default)")
    replay.add_argument(
        "--tolerance",
        type=float,
        default=None,
        metavar="DB",
        help="another platform: a frame passes when its thumbnail PSNR >= DB (default: bit-exact)",
    )
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(func=run_replay)

    compare = group.add_parser("compare", help="diff two traces (or a trace vs a checkpoint)")
    compare.add_argument("a", help="trace A")
    compare.add_argument("b", nargs="?", default=None, help="trace B (or use --checkpoint)")
    compare.add_argument("--checkpoint", default=None, help="replay A on this checkpoint as B")
    compare.add_argument("--out", required=True, help="output dir for compare.json/.html")
    compare.set_defaults(func=run_compare)

    export = group.add_parser("export", help="replay a trace and write its frames as MP4")
    export.add_argument("trace")
    export.add_argument("--checkpoint", default=None)
    export.add_argument("--out", required=True, help="output .mp4")
    export.set_defaults(func=run_export)

    golden = group.add_parser("golden", help="regenerate the golden traces (samples/traces)")
    golden.add_argument("--out", default="samples/traces")
    golden.add_argument("--checkpoint", default=None, help="default: the default checkpoint")
    golden.set_defaults(func=run_golden)


def _read(path: str):  # noqa: ANN202 - lazy import keeps --help fast
    from lpm_npc.trace.format import TraceFormatError, read_trace

    try:
        return read_trace(path)
    except FileNotFoundError as error:
        raise UserError(f"trace: no such file {path}") from error
    except TraceFormatError as error:
        raise UserError(f"{path}: {error}") from error


def _generator(checkpoint: str | None):  # noqa: ANN202
    import torch

    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.engine.weights import default_checkpoint_dir

    torch.manual_seed(0)
    path = checkpoint if checkpoint is not None else default_checkpoint_dir()
    return StreamingGenerator.from_checkpoint(path), path


def run_inspect(args: argparse.Namespace) -> int:
    trace = _read(args.trace)
    header = dict(trace.header)
    character = dict(header.get("character", {}))
    character["images"] = f"{len(character.get('images', []))} PNG"
    header["character"] = character
    summary = {
        "header": header,
        "chunks": len(trace.chunks),
        "frames": len(trace.frames),
        "shed": len(trace.sheds),
        "events": [{k: v for k, v in e.items() if k != "t"} for e in trace.events],
        "batch_sizes": sorted({int(c["batch"]["size"]) for c in trace.chunks}),
        "truncated": trace.truncated,
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        session = header.get("session", {})
        print(f"{args.trace}: format {trace.version[0]}.{trace.version[1]}")
        print(
            f"  model {header['model']['name']} sha256 {header['model']['checkpoint_sha256'][:16]}"
        )
        print(f"  character {character.get('id')}@{character.get('version')}")
        print(f"  session seed {session.get('seed')} size {session.get('size')}")
        print(f"  {summary['chunks']} chunks, {summary['frames']} frames, {summary['shed']} shed")
        print(f"  batch sizes {summary['batch_sizes']}, events {len(trace.events)}")
        if trace.truncated:
            print("  truncated: no end record (the recording stopped early)")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from lpm_npc.trace.recorder import checkpoint_sha256, platform_info
    from lpm_npc.trace.replayer import replay

    trace = _read(args.trace)
    generator, path = _generator(args.checkpoint)
    result = replay(trace, generator, tolerance_db=args.tolerance)
    notes = []
    if checkpoint_sha256(path) != trace.header["model"]["checkpoint_sha256"]:
        notes.append("checkpoint differs from the recorded one")
    recorded = dict(trace.header.get("platform", {}), torch_threads="")
    if dict(platform_info(), torch_threads="") != recorded:
        notes.append("platform differs from the recorded one (consider --tolerance)")
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(
            f"{args.trace}: {result.frames} frames, {result.mismatches} mismatches"
            + (
                f", first at seq {result.first_mismatch}"
                if result.first_mismatch is not None
                else ""
            )
        )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 1 if result.mismatches else 0


def run_compare(args: argparse.Namespace) -> int:
    from lpm_npc.trace.compare import compare_traces

    if (args.b is None) == (args.checkpoint is None):
        raise UserError("compare: give trace B or --checkpoint (exactly one)")
    report = compare_traces(args.a, args.b, checkpoint=args.checkpoint, out_dir=args.out)
    print(json.dumps({k: report[k] for k in ("frames", "differing", "first_differing_frame")}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    import numpy as np

    from lpm_npc.synth.video_io import write_mp4
    from lpm_npc.trace.format import pcm_from_bytes
    from lpm_npc.trace.replayer import replay

    trace = _read(args.trace)
    generator, _ = _generator(args.checkpoint)
    frames: list[np.ndarray] = []
    replay(trace, generator, on_frame=lambda seq, frame, ok: frames.append(frame))
    if not frames:
        raise UserError(f"{args.trace}: no frames to export")
    speak = np.concatenate([pcm_from_bytes(c["speak"]) for c in trace.chunks])
    write_mp4(args.out, np.stack(frames), 24, audio=speak)
    print(f"wrote {args.out}: {len(frames)} frames")
    return 0


def run_golden(args: argparse.Namespace) -> int:
    from lpm_npc.trace.golden import record_goldens
    from lpm_npc.trace.recorder import checkpoint_sha256

    generator, path = _generator(args.checkpoint)
    for written in record_goldens(generator, args.out, checkpoint_sha=checkpoint_sha256(path)):
        print(f"wrote {written}")
    return 0
