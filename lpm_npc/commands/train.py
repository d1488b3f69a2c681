"""`lpm-npc train`: run one stage of the distillation recipe, or all of them, and export.

Examples:
    lpm-npc train --preset tiny --all --out runs/tiny                 # ~4 h on the 2-core CPU
    lpm-npc train --preset tiny --all --out runs/tiny --device cuda --minutes-scale 0.02 --workers 8
    lpm-npc train --preset tiny --stage base --out runs/tiny --resume --minutes 30
    torchrun --nproc_per_node 2 -m lpm_npc.cli train --preset tiny --stage judge --out runs/t --steps 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpm_npc.config import TRAIN_STAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a stage of the recipe (or --all) and export the default checkpoint",
        description="Train Online LPM with the distillation recipe of config.TRAIN_PRESETS.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", choices=TRAIN_STAGES, help="train this one stage")
    which.add_argument("--all", action="store_true", help="run every stage in order, then export")
    which.add_argument("--export-only", action="store_true", help="export finished stages of --out")
    parser.add_argument("--preset", default="tiny", help="training preset (default: tiny)")
    parser.add_argument(
        "--out", type=Path, required=True, help="run directory (checkpoints, results)"
    )
    parser.add_argument(
        "--export", type=Path, default=None, help="export dir (default: OUT/export)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoints"
    )
    parser.add_argument("--minutes", type=float, default=None, help="time budget per stage")
    parser.add_argument(
        "--minutes-scale",
        type=float,
        default=1.0,
        help="multiply every recipe stage budget (e.g. 0.02 for ~8 min on one H100)",
    )
    parser.add_argument("--steps", type=int, default=None, help="step cap per stage")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    parser.add_argument("--batch-size", type=int, default=None, help="per-process batch override")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="also checkpoint every N steps"
    )
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the objective")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--model-override",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a ModelConfig field (json value), e.g. dim=64 or reference_concat=true "
        "(repeatable)",
    )
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainConfig field of the preset (json value), e.g. mouth_loss_weight=16; "
        "recorded in the export's recipe.json (give the same ones to every stage and --export-only)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="FILE",
        help="warm-start the stage's student from this safetensors (e.g. EXPORT/judge.safetensors)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="latent dataset (`lpm-npc data build`) the base..refiner stages read instead of "
        "rendering; refused if another VAE made it",
    )
    parser.add_argument("--json", action="store_true", help="print stage results as json")
    parser.set_defaults(func=run)


_BOOLS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLS.update({"false": False, "0": False, "no": False, "off": False})


def _overridden(cfg, overrides: list[str], flag: str):
    """`cfg` (a frozen dataclass) with `FIELD=VALUE` items applied; VALUE is json (a bare word is a
    string), a bool field takes true/false; an unknown field or a wrong type names the flag."""
    import dataclasses

    changes = {}
    names = {f.name for f in dataclasses.fields(cfg) if f.init}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in names:
            raise ValueError(f"{flag} {item!r}: expected FIELD=VALUE with FIELD in {sorted(names)}")
        current = getattr(cfg, key)
        if isinstance(current, bool):  # a flag: true/false (any case), 1/0, yes/no
            value = _BOOLS.get(raw.strip().lower())
            if value is None:
                raise ValueError(f"{flag} {item!r}: {key} takes true or false")
            changes[key] = value
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(current, float) and isinstance(value, int):
            value = float(value)
        if isinstance(current, (int, float, str)) and type(value) is not type(current):
            kind = {"int": "an integer", "float": "a number", "str": "a string"}
            raise ValueError(f"{flag} {item!r}: {key} takes {kind[type(current).__name__]}")
        changes[key] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _model_config(preset: str, overrides: list[str]):
    from lpm_npc.config import ModelConfig

    return _overridden(ModelConfig.from_name(preset), overrides, "--model-override")


def _train_config(preset: str, overrides: list[str]):
    from lpm_npc.config import TrainConfig

    fixed = {"preset", "stages"}  # the shape and the stage list are chosen by --preset
    for item in overrides:
        if item.partition("=")[0] in fixed:
            raise ValueError(f"--train-override {item!r}: {sorted(fixed)} come from --preset")
    return _overridden(TrainConfig.from_name(preset), overrides, "--train-override")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from lpm_npc.train.distributed import init_distributed, shutdown_distributed
    from lpm_npc.train.recipe import RunOptions, run_named_stage, run_recipe

    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if args.steps is not None and args.steps <= 0:
        raise ValueError(f"--steps must be > 0, got {args.steps}")
    if args.minutes_scale <= 0:
        raise ValueError(f"--minutes-scale must be > 0, got {args.minutes_scale}")
    if args.batch_size is not None and args.batch_size <= 0:
        raise ValueError(f"--batch-size must be > 0, got {args.batch_size}")
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    if args.init_from is not None and not args.stage:
        raise ValueError("--init-from applies to one --stage, not to --all")
    if args.data is not None and not (args.data / "manifest.json").is_file():
        raise ValueError(f"--data: no latent dataset at {args.data} (no manifest.json)")
    train = _train_config(args.preset, args.train_override)
    model = _model_config(train.preset, args.model_override)
    opts = RunOptions(
        out_dir=args.out,
        resume=args.resume,
        minutes=args.minutes,
        minutes_scale=args.minutes_scale,
        steps=args.steps,
        workers=args.workers,
        seed=args.seed,
        progress=not args.no_progress,
        checkpoint_every_steps=args.checkpoint_every,
        amp=args.amp,
        compile=args.compile,
        batch_size=args.batch_size,
        init_from=args.init_from,
        data_dir=args.data,
    )
    if args.export_only:
        from lpm_npc.train.export import export_checkpoint

        dest = export_checkpoint(args.out, args.export or args.out / "export", train, model)
        print(dest)
        return 0
    info = init_distributed(args.device)
    try:
        if args.all:
            results = run_recipe(train, model, opts, info, export_dir=args.export)
        else:
            result = run_named_stage(train, model, args.stage, opts, info)
            results = {args.stage: result} if result is not None else {}
    finally:
        shutdown_distributed()
    if info.is_main:
        payload = {name: dataclasses.asdict(r) for name, r in results.items()}
        if args.json:
            print(json.dumps(payload, indent=2))
        else:
            for name, r in payload.items():
                print(
                    f"{name}: {r['steps']} steps, {r['samples_per_s']:.2f} samples/s, "
                    f"loss {r['first_loss']:.4g} -> {r['final_loss']:.4g} ({r['stopped_by']})"
                )
    return 0
