"""Where does a VAE lose quality: in its encoder or in its decoder?

For each held-out character (the bench's seeds) a `--seconds` conversation is rendered and
round-tripped through the VAE (`encoder`); then, with the decoder frozen, the latents themselves
are optimised (`--steps` of Adam on the pixel MSE, starting from the encoder's) and decoded again
(`optimised`). If the optimised latents decode far better, the encoder is what loses detail (a
new encoder means new latents, so every DiT must be retrained); if they decode about as well,
the decoder cannot draw more than it does (a wider or longer-trained decoder is the lever, and a
decoder-only stage keeps every DiT valid). Printed (json): whole-frame PSNR of both per character
and their means. This script measures; it trains nothing that is kept.

    python scripts/vae_latent_probe.py --vae samples/checkpoints/tiny/model.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _psnr(a, b) -> float:
    import torch

    return float(10 * torch.log10(4.0 / ((a - b) ** 2).mean()))  # frames in [-1, 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", required=True, help="LPM safetensors whose VAE to probe")
    parser.add_argument("--characters", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="per character (x 24 frames)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps on the latents")
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()

    import torch

    from lpm_npc.config import ModelConfig
    from lpm_npc.model.vae import load_frozen_vae
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.render import render_frames

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny")
    vae = load_frozen_vae(Path(args.vae), cfg)
    for p in vae.parameters():
        p.requires_grad_(False)
    stride = cfg.temporal_stride
    rows = []
    for seed in held_out_character_seeds(args.characters, start=HELD_OUT_SEED_START):
        spec = CharacterSpec.from_seed(seed)
        conv = direct_conversation(seed + 31, args.seconds, spec=spec)
        frames = render_frames(spec, conv.motion, cfg.image_size)
        frames = frames[: (len(frames) // stride) * stride]
        video = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            start = vae.encode(video)  # (1, C, Tl, h, w)
            encoder = _psnr(vae.decode(start).clamp(-1, 1), video)
        latents = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([latents], lr=args.lr)
        for _ in range(args.steps):
            loss = (vae.decode(latents) - video).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            optimised = _psnr(vae.decode(latents).clamp(-1, 1), video)
        rows.append(
            {
                "character_seed": seed,
                "encoder_db": round(encoder, 2),
                "optimised_db": round(optimised, 2),
            }
        )
    report = {
        "vae": args.vae,
        "steps": args.steps,
        "encoder_db": round(sum(r["encoder_db"] for r in rows) / len(rows), 2),
        "optimised_db": round(sum(r["optimised_db"] for r in rows) / len(rows), 2),
        "per_character": rows,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
