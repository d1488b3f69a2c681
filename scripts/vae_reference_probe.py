"""Would a decoder that also sees the character's front reference reconstruct better?

Issue 8 names this lever: eyes, teeth and hair texture are per-character constants, so features of
the front view (computed once per character, like the reference K/V) might let the decoder draw
what the latents lost. This script trains one arm of a controlled comparison, decoder only, from
the same warm start, on the same clips in the same order, with the same loss (the recipe's mouth
and eye box weights) and learning rate:

- `--arm ref`: a reference branch is spliced into the decoder by forward hooks on its ResBlocks:
  a small conv pyramid over the front view; cross-attention (decoder queries, reference keys and
  values, a shared learned 2-D position) at the latent-side level; 1x1 fusions of decoder and
  reference features at the next two levels. Its outputs start at zero, so step 0 draws the same
  frames as the warm start.
- `--arm plain`: the decoder alone.

Every `--eval-every` steps (and before and after) the held-out round trip (the bench's character
seeds, `--seconds` conversations) is measured: whole-frame, mouth-box and eye-box PSNR. Printed and
written to `--out` (json). It keeps nothing: a probe, not a stage.

    python scripts/vae_reference_probe.py --vae runs/vdec3/vae/final.safetensors --arm ref \
        --steps 600 --out runs/probe_ref.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


class ReferenceBranch(nn.Module):
    """Front-view features at the decoder's three video-rate levels (latent side first)."""

    def __init__(self, widths: tuple[int, int, int], side: int, key_dim: int = 64) -> None:
        super().__init__()
        w16, w32, w64 = widths  # latent side, x2, x4
        self.stem = nn.Conv2d(3, 24, 3, padding=1)
        self.pyramid = nn.ModuleList()
        for w_in, w_out in ((24, w64), (w64, w32), (w32, w16)):
            self.pyramid.append(nn.Conv2d(w_in, w_out, 2, stride=2))
            self.pyramid.append(nn.Conv2d(w_out, w_out, 3, padding=1))
        self.pos = nn.Parameter(torch.randn(1, w16, side, side) * 0.1)
        self.q, self.k = nn.Conv2d(w16, key_dim, 1), nn.Conv2d(w16, key_dim, 1)
        self.v, self.o = nn.Conv2d(w16, w16, 1), nn.Conv2d(w16, w16, 1)
        self.fuse_in = nn.ModuleList([nn.Conv2d(2 * w32, w32, 1), nn.Conv2d(2 * w64, w64, 1)])
        self.fuse_out = nn.ModuleList([nn.Conv2d(w32, w32, 1), nn.Conv2d(w64, w64, 1)])
        for zero in (self.o, *self.fuse_out):
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)
        self.features: tuple[torch.Tensor, ...] | None = None  # set per batch of characters

    def set_reference(self, front: torch.Tensor | None) -> None:
        """(B, 3, H, W) front views in [-1, 1] (one per decoded row), or None to switch off."""
        if front is None:
            self.features = None
            return
        act = nn.functional.silu
        x = act(self.stem(front))
        levels = []
        for down, conv in zip(self.pyramid[::2], self.pyramid[1::2]):
            x = act(down(x))
            x = x + act(conv(x))
            levels.append(x)
        f64, f32, f16 = levels
        keys = self.k(f16 + self.pos).flatten(2)  # (B, d, N)
        values = self.v(f16).flatten(2)  # (B, C, N)
        self.features = (keys, values, f32, f64)

    def hook(self, level: int):
        def apply(_module, _inputs, x: torch.Tensor) -> torch.Tensor:
            if self.features is None:
                return x
            keys, values, f32, f64 = self.features
            rows = x.shape[0] // keys.shape[0]  # decoded frames per reference
            if level == 0:
                q = self.q(x + self.pos).flatten(2).transpose(1, 2)  # (N, hw, d)
                k, v = keys.repeat_interleave(rows, 0), values.repeat_interleave(rows, 0)
                att = torch.softmax(q @ k / math.sqrt(q.shape[-1]), dim=-1)
                return x + self.o((att @ v.transpose(1, 2)).transpose(1, 2).reshape(x.shape))
            f = (f32, f64)[level - 1].repeat_interleave(rows, 0)
            a, b = self.fuse_in[level - 1], self.fuse_out[level - 1]
            return x + b(nn.functional.silu(a(torch.cat([x, f], 1))))

        return apply


def _front(references: np.ndarray, roles) -> torch.Tensor:
    index = [tuple(r) for r in roles].index(("view", "front"))
    return torch.from_numpy(np.asarray(references[index])).permute(2, 0, 1).float() / 127.5 - 1


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def _held_out(n: int, seconds: float, size: int, stride: int) -> list:
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.dataset import HELD_OUT_SEED_START, held_out_character_seeds
    from lpm_npc.synth.director import direct_conversation
    from lpm_npc.synth.face_boxes import face_boxes
    from lpm_npc.synth.render import render_frames
    from lpm_npc.synth.sheet import render_sheet, sheet_to_array

    cases = []
    for seed in held_out_character_seeds(n, start=HELD_OUT_SEED_START):
        spec = CharacterSpec.from_seed(seed)
        conv = direct_conversation(seed, seconds, spec=spec)
        n_frames = conv.motion.n_frames // stride * stride
        truth = render_frames(spec, conv.motion, size)[:n_frames]
        images, roles = sheet_to_array(render_sheet(spec, size), size)
        boxes = face_boxes(spec, conv.motion, size)
        cases.append(
            (truth, _front(images, roles)[None], boxes.mouth[:n_frames], boxes.eyes[:n_frames])
        )
    return cases


@torch.no_grad()
def _evaluate(vae, branch: ReferenceBranch | None, cases) -> dict[str, float]:
    from lpm_npc.judge.roundtrip import round_trip_frames

    scores: dict[str, list[float]] = {"frame": [], "mouth": [], "eyes": []}
    for truth, front, mouth, eyes in cases:
        if branch is not None:
            branch.set_reference(front)
        px = round_trip_frames(vae, truth, segment_frames=len(truth))  # one pass per clip
        scores["frame"].append(_psnr(truth, px))
        for key, region in (("mouth", mouth), ("eyes", eyes)):
            crops = [
                (t[y0:y1, x0:x1], p[y0:y1, x0:x1])
                for t, p, (x0, y0, x1, y1) in zip(truth, px, region.astype(int))
            ]
            a = np.concatenate([c[0].reshape(-1, 3) for c in crops])
            b = np.concatenate([c[1].reshape(-1, 3) for c in crops])
            scores[key].append(_psnr(a, b))
    return {k: round(float(np.mean(v)), 2) for k, v in scores.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", required=True, help="LPM safetensors (the warm start)")
    parser.add_argument("--arm", choices=["ref", "plain"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="json path")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=8, help="clips of 8 frames per step")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--characters", type=int, default=3, help="held-out characters")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--eyes-weight", type=float, default=4.0)
    args = parser.parse_args()

    from lpm_npc.config import ModelConfig, TrainConfig
    from lpm_npc.model.vae import decoder_channels, load_frozen_vae, reconstruction_loss
    from lpm_npc.synth.dataset import ClipDataset
    from lpm_npc.train.batch import box_weights, collate_clips, frames_to_video

    torch.manual_seed(0)
    vae = load_frozen_vae(Path(args.vae), ModelConfig.from_name("tiny"))
    cfg = vae.cfg
    vae.decoder.requires_grad_(True)
    branch = None
    params = list(vae.decoder.parameters())
    if args.arm == "ref":
        n_down = len(vae.decoder.blocks)
        widths = tuple(decoder_channels(cfg)[n_down - i] for i in range(3))
        branch = ReferenceBranch(widths, cfg.latent_size)
        for level in range(3):
            vae.decoder.blocks[level].register_forward_hook(branch.hook(level))
        params += list(branch.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    train = dataclasses.replace(TrainConfig.from_name("tiny"), eyes_loss_weight=args.eyes_weight)
    n = train.n_characters
    data = ClipDataset(
        seed=train.data_seed,
        size=cfg.image_size,
        n_frames=8,
        n_characters=n,
        cache_characters=n,
        cache_conversations=2 * n,
    )
    cases = _held_out(args.characters, args.seconds, cfg.image_size, cfg.temporal_stride)
    report = {"arm": args.arm, "vae": args.vae, "lr": args.lr, "points": []}
    report["points"].append({"step": 0, "minutes": 0.0, **_evaluate(vae, branch, cases)})
    print(json.dumps(report["points"][-1]), flush=True)
    rng = np.random.default_rng(0)
    start = time.time()
    for step in range(1, args.steps + 1):
        clips = [data[int(rng.integers(len(data)))] for _ in range(args.batch)]
        batch = collate_clips(clips)
        if branch is not None:
            fronts = [
                _front(batch.references[i].numpy(), c.reference_roles) for i, c in enumerate(clips)
            ]
            branch.set_reference(torch.stack(fronts))
        video = frames_to_video(batch.frames)
        out = vae(video, sample=True, train_encoder=False)
        weight = box_weights(batch.boxes, cfg.image_size, 1, train)
        weight = weight / weight.mean(dim=(2, 3), keepdim=True)
        loss = reconstruction_loss(video, out.recon, out.mean, out.logvar, pixel_weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            point = {"step": step, "minutes": round((time.time() - start) / 60, 1)}
            report["points"].append({**point, **_evaluate(vae, branch, cases)})
            print(json.dumps(report["points"][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
