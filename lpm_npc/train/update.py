"""Put newly trained parts into an exported checkpoint directory, leaving everything else as it is.

    python -m lpm_npc.train.update --checkpoint samples/checkpoints/tiny --out runs/ckpt_new \
        [--decoder runs/vdec/vae/final.safetensors [--decoder-channels 16,48,64,128]] \
        [--judge runs/judge2/judge/final.safetensors]

- `--decoder`: the `vae.decoder.*` tensors of a decoder-only `vae` stage (`lpm-npc train --stage
  vae --train-override vae_decoder_only=true`) replace the checkpoint's. Refused unless every other
  `vae.*` tensor (the encoder and the latent statistics) equals the checkpoint's at the
  checkpoint's dtype: only then does the new decoder read the latents the checkpoint's DiTs draw
  (the teacher shares the VAE, so its rung in `bench quality` draws with the new decoder too).
- `--decoder-channels`: the decoder is wider than the checkpoint's (`vae_decoder_channels` of a
  stage that widened it, `model.vae_widen`): its shapes are checked against that config, which
  is written into config.json's overrides, so the checkpoint loads with the wider decoder.
- `--judge`: a `judge` stage's `final.safetensors` becomes `judge.safetensors`.
Each part is cast to the checkpoint's export dtype and recorded in `recipe.json` under `updates`
(the part, the source file and its sha256, and the stage's `result.json` next to it). `--out` must
not exist: it is written whole, so measure it (`bench quality`, `judge --calibrate`) before
copying it over the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lpm_npc.config import ModelConfig
from lpm_npc.digest import file_sha256
from lpm_npc.engine.weights import CONFIG_FILE, WEIGHTS_FILE, config_from_data
from lpm_npc.model.vae import VideoVAE
from lpm_npc.train.checkpoint import save_tensors_atomic, write_json_atomic
from lpm_npc.train.export import EXPORT_DTYPES, write_judge
from lpm_npc.train.stage_vae import DECODER_PREFIX


def _stage_record(part: str, source: Path) -> dict:
    result = source.parent / "result.json"
    return {
        "part": part,
        "source": str(source),
        "sha256": file_sha256(source),
        "stage": json.loads(result.read_text()) if result.is_file() else None,
        "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def swap_decoder(
    model: dict[str, torch.Tensor],
    stage: dict[str, torch.Tensor],
    shapes: dict[str, torch.Size] | None = None,
) -> int:
    """Replace `model`'s decoder tensors by `stage`'s (cast to `model`'s dtypes) in place; refuses
    a stage whose encoder or latent statistics differ. `shapes`: the decoder tensor shapes of a
    re-widened decoder (`decoder_shapes`), else the checkpoint's own. Returns the number of
    tensors replaced."""
    vae_keys = [k for k in model if k.startswith("vae.")]
    decoder = [k for k in vae_keys if k.startswith(DECODER_PREFIX)]
    if not decoder:
        raise ValueError("the checkpoint has no vae.decoder.* tensors")
    missing = [k for k in vae_keys if k not in stage]
    if missing:
        raise ValueError(f"--decoder: not an LPM state dict of this shape (no {missing[0]})")
    for key in vae_keys:
        if key in decoder:
            continue
        mine, theirs = model[key], stage[key].to(model[key].dtype)
        if mine.shape != theirs.shape or not torch.equal(mine, theirs):
            raise ValueError(
                f"--decoder: {key} differs from the checkpoint's; only a decoder-only vae stage "
                "warm-started from this checkpoint keeps the latents its DiTs were trained on"
            )
    if shapes is not None and sorted(shapes) != sorted(decoder):
        raise ValueError("--decoder-channels: the decoder would not have the checkpoint's layers")
    for key in decoder:
        want = shapes[key] if shapes is not None else model[key].shape
        if key not in stage or stage[key].shape != want:
            got = tuple(stage[key].shape) if key in stage else "missing"
            hint = "" if shapes is not None else " (a widened decoder needs --decoder-channels)"
            raise ValueError(f"--decoder: {key} has shape {got}, expected {tuple(want)}{hint}")
        model[key] = stage[key].to(model[key].dtype).contiguous()
    return len(decoder)


def decoder_shapes(cfg: ModelConfig) -> dict[str, torch.Size]:
    """`vae.decoder.*` tensor shapes of the LPM VAE of `cfg`."""
    decoder = VideoVAE(cfg).decoder
    return {DECODER_PREFIX + k: v.shape for k, v in decoder.state_dict().items()}


def update_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    decoder: Path | None = None,
    judge: Path | None = None,
    decoder_channels: tuple[int, ...] | None = None,
) -> dict:
    """Write `out` = `checkpoint` with the given parts replaced; returns the updated recipe (plus
    `updates_added`, the records of this call; not written). `decoder_channels`: the new
    decoder's `ModelConfig.vae_decoder_channels` (written to config.json's overrides)."""
    checkpoint, out = Path(checkpoint), Path(out)
    if decoder is None and judge is None:
        raise ValueError("nothing to update: give --decoder and/or --judge")
    if out.exists():
        raise FileExistsError(f"--out {out} exists; give a new directory")
    for name, path in (("--decoder", decoder), ("--judge", judge)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name} {path}: no such file")
    recipe = json.loads((checkpoint / "recipe.json").read_text())
    dtype = EXPORT_DTYPES[recipe.get("export_dtype", "float16")]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp)
    updates = list(recipe.get("updates", []))
    before = len(updates)
    if decoder_channels is not None and decoder is None:
        raise ValueError("--decoder-channels needs --decoder")
    if decoder is not None:
        model = load_file(str(checkpoint / WEIGHTS_FILE))
        shapes = None
        if decoder_channels is not None:
            config = json.loads((checkpoint / CONFIG_FILE).read_text())
            config.setdefault("overrides", {})["vae_decoder_channels"] = list(decoder_channels)
            shapes = decoder_shapes(config_from_data(config, CONFIG_FILE))
            write_json_atomic(tmp / CONFIG_FILE, config)
        swap_decoder(model, load_file(str(decoder)), shapes)
        save_tensors_atomic(tmp / WEIGHTS_FILE, model, metadata={"stage": recipe["model_stage"]})
        record = _stage_record("vae.decoder", Path(decoder))
        if decoder_channels is not None:
            record["vae_decoder_channels"] = list(decoder_channels)
        updates.append(record)
    if judge is not None:
        state = {k: v.float() for k, v in load_file(str(judge)).items()}
        write_judge(tmp, state, dtype)
        updates.append(_stage_record("judge", Path(judge)))
    recipe["updates"] = updates
    write_json_atomic(tmp / "recipe.json", recipe)
    tmp.rename(out)
    return {**recipe, "updates_added": updates[before:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lpm_npc.train.update",
        description="Put a decoder-only vae stage's decoder and/or a judge stage's judge into an "
        "exported checkpoint (module docstring).",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="exported checkpoint dir")
    parser.add_argument("--out", type=Path, required=True, help="new checkpoint dir to write")
    parser.add_argument("--decoder", type=Path, default=None, help="a vae stage final.safetensors")
    parser.add_argument("--judge", type=Path, default=None, help="a judge stage final.safetensors")
    parser.add_argument(
        "--decoder-channels",
        default=None,
        help="widths of a widened --decoder, full resolution first (e.g. 16,48,64,128: the "
        "vae_decoder_channels it was trained with)",
    )
    args = parser.parse_args(argv)
    try:
        channels = None
        if args.decoder_channels is not None:
            try:
                channels = tuple(int(c) for c in args.decoder_channels.split(","))
            except ValueError:
                raise ValueError(
                    f"--decoder-channels: comma-separated integers, got {args.decoder_channels!r}"
                ) from None
        recipe = update_checkpoint(
            args.checkpoint,
            args.out,
            decoder=args.decoder,
            judge=args.judge,
            decoder_channels=channels,
        )
    except (OSError, ValueError, KeyError) as error:
        parser.exit(2, f"error: {error}\n")
    print(json.dumps({"out": str(args.out), "updates": recipe["updates_added"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
