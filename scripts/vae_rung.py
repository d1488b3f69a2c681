"""The vae rung of `lpm-npc bench quality` for bare VAE files, without a checkpoint or any DiT.

    python scripts/vae_rung.py --vae joint=runs/vjoint/vae/final.safetensors \
        --vae wide=runs/vlat32/vae/final.safetensors [--suite quick]

For each VAE (the `vae.*` tensors of a weights file; decoder and latent widths read off them) the
suite's held-out babble conversations are rendered and round-tripped exactly as the bench's vae
rung does (`bench.quality_cases.build_cases`, `judge.roundtrip.round_trip_frames`,
`bench.quality_metrics`), and the whole-frame and mouth-box PSNR against the truth render are
printed (json): the numbers issue 8's VAE goals are read on, per character and averaged. This
script measures; it trains nothing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", action="append", required=True, help="NAME=FILE (repeatable)")
    parser.add_argument("--suite", default="quick", choices=("quick", "full"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    from lpm_npc.bench.quality_cases import build_cases
    from lpm_npc.bench.quality_metrics import box_psnr_db, psnr_db
    from lpm_npc.config import QUALITY_SUITES, ModelConfig
    from lpm_npc.judge.roundtrip import round_trip_frames
    from lpm_npc.model.vae import load_frozen_vae
    from lpm_npc.synth.render import render_frames

    torch.set_num_threads(args.threads)
    named = []
    for item in args.vae:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--vae: expected NAME=FILE, got {item!r}")
        named.append((name, path))
    suite = QUALITY_SUITES[args.suite]
    size = ModelConfig.from_name("tiny").image_size
    silent = [np.zeros(16000, np.float32)] * suite.n_characters  # TTS cases are not used here
    cases = build_cases(suite, size, silent)
    truth = [render_frames(sp, c.motion, size) for sp, c in zip(cases.specs, cases.convs)]
    out: dict = {"suite": args.suite, "characters": cases.seeds, "vae": {}}
    for name, path in named:
        try:
            vae = load_frozen_vae(path, ModelConfig.from_name("tiny"))
        except (FileNotFoundError, ValueError) as err:
            parser.error(f"--vae {name}: {err}")
        whole, mouth = [], []
        for frames, boxes in zip(truth, cases.mouth):
            decoded = round_trip_frames(vae, frames)
            whole.append(psnr_db(decoded, frames))
            mouth.append(box_psnr_db(decoded, frames, boxes))
        out["vae"][name] = {
            "latent_channels": vae.cfg.latent_channels,
            "identity_psnr_db": round(float(np.mean(whole)), 2),
            "mouth_psnr_db": round(float(np.mean(mouth)), 2),
            "identity_psnr_db_per_character": [round(w, 2) for w in whole],
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
