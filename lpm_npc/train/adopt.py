"""Adopt the judge of an existing checkpoint as a run's finished `judge` stage.

    python -m lpm_npc.train.adopt --from samples/checkpoints/tiny --run runs/r3
    python -m lpm_npc.train.adopt --from samples/checkpoints/tiny --run runs/r3 \
        --recipe runs/r3/export/recipe.json

A run's export needs a finished `judge` stage, but the judge scores generated video and is not part
of what the LPM stages train: a short run (one CPU session, a few GPU minutes) is better off keeping
a judge that had more training than it could give one. The first form writes
`<run>/judge/final.safetensors` (the checkpoint's judge, floats cast to fp32), `result.json` (the
checkpoint recipe's judge entry, so the export's recipe keeps its steps, samples and losses) and
`adopted.json` (where it came from and its sha256). Nothing is overwritten: a run whose judge stage
exists is left alone. With `--recipe`, the adoption record and the source's `judge_continuations` are
written into an exported recipe.json as `judge_adopted_from` (atomically), so the shipped recipe says
that its judge was not trained by this run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from lpm_npc.digest import file_sha256
from lpm_npc.judge.reader import JUDGE_FILE
from lpm_npc.train.checkpoint import save_tensors_atomic, write_json_atomic
from lpm_npc.train.loop import stage_dir

ADOPTED_FILE = "adopted.json"


def _judge_entry(recipe: dict) -> dict:
    stages = recipe.get("stages", {})
    if isinstance(stages, dict):
        entry = stages.get("judge")
    else:
        entry = next((s for s in stages if s.get("stage") == "judge"), None)
    if entry is None:
        raise ValueError("the checkpoint's recipe.json has no judge stage entry")
    return entry


def adopt_judge(checkpoint_dir: Path, run_dir: Path) -> dict:
    """Make `checkpoint_dir`'s judge the run's finished judge stage; returns the adoption record."""
    checkpoint_dir, run_dir = Path(checkpoint_dir), Path(run_dir)
    out = stage_dir(run_dir, "judge")
    if (out / ADOPTED_FILE).is_file():
        return json.loads((out / ADOPTED_FILE).read_text())
    if (out / "result.json").is_file():
        raise FileExistsError(f"{out} already holds a trained judge stage; not replacing it")
    source = checkpoint_dir / JUDGE_FILE
    recipe_path = checkpoint_dir / "recipe.json"
    if not source.is_file() or not recipe_path.is_file():
        raise FileNotFoundError(f"{checkpoint_dir} needs {JUDGE_FILE} and recipe.json")
    recipe = json.loads(recipe_path.read_text())
    entry = _judge_entry(recipe)
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in load_file(str(source)).items()
    }
    record = {
        "checkpoint": str(checkpoint_dir),
        "judge_sha256": file_sha256(source),
        "stage": entry,
        "judge_continuations": recipe.get("judge_continuations", []),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(out / "final.safetensors", state)
    write_json_atomic(out / ADOPTED_FILE, record)
    write_json_atomic(out / "result.json", entry)  # last: it marks the stage finished
    return record


def record_in_recipe(run_dir: Path, recipe_path: Path) -> dict:
    """Write the run's adoption record into an exported recipe.json as `judge_adopted_from`."""
    record = json.loads((stage_dir(Path(run_dir), "judge") / ADOPTED_FILE).read_text())
    recipe = json.loads(Path(recipe_path).read_text())
    recipe["judge_adopted_from"] = record
    recipe["judge_continuations"] = record["judge_continuations"]
    write_json_atomic(Path(recipe_path), recipe)
    return recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lpm_npc.train.adopt",
        description="Adopt a checkpoint's judge as a run's judge stage (module docstring).",
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, help="checkpoint dir")
    parser.add_argument("--run", type=Path, required=True, help="run directory")
    parser.add_argument(
        "--recipe", type=Path, default=None, help="exported recipe.json to annotate"
    )
    args = parser.parse_args(argv)
    try:
        record = adopt_judge(args.source, args.run)
        if args.recipe is not None:
            record_in_recipe(args.run, args.recipe)
    except (OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(json.dumps({"judge_sha256": record["judge_sha256"], "from": record["checkpoint"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
