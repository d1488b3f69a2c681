"""A running stage's EMA as an LPM weights file, to measure a run before it finishes.

    python scripts/ema_snapshot.py runs/vjoint/vae/ckpt/step_00001150 runs/vjoint_1150.safetensors

A resumable checkpoint holds `model.safetensors` (the whole LPM state: weights the stage trains,
frozen parts, buffers) and `ema.safetensors` (the EMA of the trained weights only). The output is
the model state with the EMA laid over it: what the stage's `final.safetensors` would hold if it
stopped now, before `finish()` (the vae stage measures latent statistics there; a round trip does
not depend on them). Read by `scripts/vae_sheet.py --vae`, `lpm-npc judge --calibrate --vae`, ...
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint step directory of a run")
    parser.add_argument("out", type=Path, help="safetensors to write")
    args = parser.parse_args()

    from safetensors.torch import load_file, save_file

    missing = [
        n for n in ("model.safetensors", "ema.safetensors") if not (args.checkpoint / n).is_file()
    ]
    if missing:
        parser.error(f"checkpoint: {args.checkpoint} has no {', '.join(missing)}")
    state = load_file(str(args.checkpoint / "model.safetensors"))
    ema = load_file(str(args.checkpoint / "ema.safetensors"))
    unknown = sorted(set(ema) - set(state))
    if unknown:
        parser.error(f"checkpoint: its EMA has tensors the model lacks, e.g. {unknown[0]}")
    state.update(ema)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(args.out))
    print(f"{len(ema)} EMA tensors over {len(state)} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
