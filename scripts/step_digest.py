"""Digest of every frame of a fixed multi-session run (for bitwise before/after comparisons).

    OMP_NUM_THREADS=1 python scripts/step_digest.py out.npz

Two characters (3 and 2 references), sessions opened at different times so rings differ in fill,
batches of 1, 2 and 3 sessions, 8 steps; saves every session's frames.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import torch
from PIL import Image

from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.engine.protocol import ChunkAudio
from lpm_npc.serve.testing import sheet_images


def _character(generator: StreamingGenerator, seed: int, n: int):
    images, roles = [], []
    for role, label, _, png in sheet_images(seed=seed)[:n]:
        image = Image.open(io.BytesIO(png)).convert("RGB").resize((generator.cfg.image_size,) * 2)
        images.append(np.asarray(image))
        roles.append((role, label))
    return generator.prepare(np.stack(images), roles, name=f"c{seed}")


def main() -> None:
    torch.manual_seed(0)
    generator = StreamingGenerator.from_checkpoint("samples/checkpoints/tiny")
    n = generator.cfg.samples_per_chunk
    chars = [_character(generator, 0, 3), _character(generator, 1, 2)]
    rng = np.random.default_rng(0)
    sessions = [
        generator.open(chars[i % 2], prompt=["", "cheerful"][i % 2], seed=i) for i in range(3)
    ]
    clock = [0, 0, 0]
    out = {}
    plan = [[0], [0, 1], [0, 1, 2], [2], [1, 2, 0], [0, 2], [0, 1, 2], [1], [0, 1, 2], [2, 0, 1]]
    for step, rows in enumerate(plan):
        audio = []
        for r in rows:
            pcm = (rng.standard_normal((2, n)) * 0.1).astype(np.float32)
            audio.append(ChunkAudio(start_sample=clock[r] * n, speak=pcm[0], listen=pcm[1]))
            clock[r] += 1
        frames = generator.step([sessions[r] for r in rows], audio)
        for r, f in zip(rows, frames):
            out[f"s{step}_r{r}"] = f.frames
    for r, s in enumerate(sessions):
        out[f"ring_keys_{r}"] = s.history.keys.numpy()
        out[f"decode_{r}"] = s.decode_cache.slots[-1].numpy()
    np.savez(sys.argv[1], **out)


if __name__ == "__main__":
    main()
