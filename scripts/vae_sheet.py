"""Contact sheet and PSNR of VAE round-trips on held-out characters: truth, then each VAE given.

    python scripts/vae_sheet.py --vae old=samples/checkpoints/tiny/model.safetensors \
        --vae new=runs/vdec/vae/final.safetensors --out runs/vae_sheet.png [--characters 4]

For each held-out character (the bench's seeds) a `--seconds` babble conversation is directed and
rendered; every VAE round-trips the same frames. The sheet has one row per (character, moment):
the whole frame of truth and of each VAE, then the mouth box of each (the renderer's geometry,
upscaled), at the frames where the jaw is most open. Printed (json): whole-frame, mouth-box and
eye-box PSNR per VAE over all frames, and each decoder's cost per streaming chunk
(`decode_ms_per_chunk`, interleaved in this run, and `decode_cost_vs_first`). A widened decoder's
widths are read off its tensors. This script measures; it trains nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def _crop(frames: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    return [f[y0:y1, x0:x1] for f, (x0, y0, x1, y1) in zip(frames, boxes.astype(int))]


def _box_psnr(truth: np.ndarray, other: np.ndarray, boxes: np.ndarray) -> float:
    a = np.concatenate([c.reshape(-1, 3) for c in _crop(truth, boxes)])
    b = np.concatenate([c.reshape(-1, 3) for c in _crop(other, boxes)])
    return _psnr(a, b)


def _decode_cost(vaes: dict, cfg, rounds: int) -> dict[str, float]:
    """Median ms of one streaming chunk (`decode_step` of one latent frame, batch 1) per VAE,
    the VAEs interleaved round by round so a busy machine slows all of them alike."""
    import torch

    z = torch.randn(1, cfg.latent_channels, 1, cfg.latent_size, cfg.latent_size)
    caches = {n: v.init_decode_cache(1, latent_hw=(cfg.latent_size,) * 2) for n, v in vaes.items()}
    times: dict[str, list[float]] = {n: [] for n in vaes}
    with torch.no_grad():
        for _ in range(rounds + 3):
            for name, vae in vaes.items():
                start = time.perf_counter()
                vae.decode_step(z, caches[name])
                times[name].append(time.perf_counter() - start)
    return {n: round(1e3 * float(np.median(t[3:])), 2) for n, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", action="append", required=True, help="NAME=LPM safetensors")
    parser.add_argument("--out", type=Path, required=True, help="PNG path")
    parser.add_argument("--characters", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--moments", type=int, default=2, help="rows per character")
    parser.add_argument("--cost-rounds", type=int, default=30, help="timed decode_step rounds")
    args = parser.parse_args()

    from PIL import Image

    from lpm_npc.config import ModelConfig
    from lpm_npc.judge.roundtrip import round_trip_frames
    from lpm_npc.model.vae import load_frozen_vae
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.face_boxes import face_boxes
    from lpm_npc.synth.render import render_frames

    cfg = ModelConfig.from_name("tiny")
    size = cfg.image_size
    vaes = {}
    for item in args.vae:
        name, _, path = item.partition("=")
        vaes[name] = load_frozen_vae(Path(path), cfg)
    cost = _decode_cost(vaes, cfg, args.cost_rounds)
    seeds = held_out_character_seeds(args.characters, start=HELD_OUT_SEED_START)
    scores = {name: {"frame": [], "mouth": [], "eyes": []} for name in vaes}
    rows = []
    for seed in seeds:
        spec = CharacterSpec.from_seed(seed)
        conv = direct_conversation(seed, args.seconds, spec=spec)
        truth = render_frames(spec, conv.motion, size)
        boxes = face_boxes(spec, conv.motion, size)
        trips = {name: round_trip_frames(vae, truth) for name, vae in vaes.items()}
        for name, frames in trips.items():
            scores[name]["frame"].append(_psnr(truth, frames))
            scores[name]["mouth"].append(_box_psnr(truth, frames, boxes.mouth))
            scores[name]["eyes"].append(_box_psnr(truth, frames, boxes.eyes))
        jaw = np.asarray(conv.motion.jaw_open)
        for t in np.argsort(-jaw)[: args.moments]:
            x0, y0, x1, y1 = boxes.mouth[t].astype(int)
            pad = max(x1 - x0, y1 - y0) // 2
            x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
            x1, y1 = min(x1 + pad, size), min(y1 + pad, size)
            cells = [truth[t]] + [trips[n][t] for n in vaes]
            mouths = [truth[t][y0:y1, x0:x1]] + [trips[n][t][y0:y1, x0:x1] for n in vaes]
            row = [Image.fromarray(c).resize((256, 256), Image.Resampling.NEAREST) for c in cells]
            row += [Image.fromarray(m).resize((256, 256), Image.Resampling.NEAREST) for m in mouths]
            rows.append(row)
    width = len(rows[0]) * 256
    sheet = Image.new("RGB", (width, len(rows) * 256), (24, 24, 24))
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            sheet.paste(cell, (c * 256, r * 256))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    columns = ["truth", *vaes, "truth mouth", *[f"{n} mouth" for n in vaes]]
    report = {
        "columns": columns,
        "characters": seeds,
        "decode_ms_per_chunk": cost,
        "decode_cost_vs_first": {n: round(v / cost[next(iter(cost))], 3) for n, v in cost.items()},
        "psnr_db": {
            name: {k: round(float(np.mean(v)), 2) for k, v in s.items()}
            for name, s in scores.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
