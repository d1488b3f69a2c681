"""Per-stage cost of one batched step at batch 1 and batch B, interleaved, min and median of N.

    OMP_NUM_THREADS=1 python scripts/bench_stages.py --batch 4 --repeats 20

Builds one real `StreamChunk` per batch size (sessions with full history rings), then times each
stage of `LPM.stream_chunk` on it again and again (audio encode, one backbone denoising pass, the
refiner, the VAE decode step), alternating batch 1 and batch B so background load hits both. Per
stage: `per_row_ms` = (t_B - t_1) / (B - 1) and `fixed_ms` = t_1 - per_row_ms (from the minima).
Times are the compute thread's CPU time (with OMP_NUM_THREADS=1 all of the work), so being
descheduled on a busy machine does not count; cache pollution by other processes still does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lpm_npc.engine.protocol import ChunkAudio
from lpm_npc.model.conditioning import Conditioning
from lpm_npc.model.flow import add_noise


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_batch import _character  # a sibling script

    from lpm_npc.engine.generator import StreamingGenerator

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="samples/checkpoints/tiny")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    generator = StreamingGenerator.from_checkpoint(args.checkpoint)
    model, cfg = generator.model, generator.cfg
    character = _character(generator)
    n = cfg.samples_per_chunk
    rng = np.random.default_rng(0)

    def audio(k: int) -> ChunkAudio:
        pcm = (rng.standard_normal((2, n)) * 0.1).astype(np.float32)
        return ChunkAudio(start_sample=k * n, speak=pcm[0], listen=pcm[1])

    chunks = {}
    for b in (1, args.batch):
        states = [generator.open(character, seed=i) for i in range(b)]
        for k in range(cfg.history_chunks + 1):
            generator.step(states, [audio(k) for _ in states])
        chunks[b] = generator._schedule(states, [audio(9) for _ in states])

    stages = {}
    for b, chunk in chunks.items():
        with torch.inference_mode():
            speak, listen = model._encode_audio(chunk)
            cond = Conditioning(chunk.text, chunk.text_mask, speak, listen)
            x = chunk.noise[:, 0]
            t = torch.full((b, cfg.chunk_latent_frames), 0.7)
            x0 = model.backbone.forward_chunk(x, t, chunk.backbone_refs, cond, chunk.history)
        stages[b] = {
            "audio": lambda c=chunk: model._encode_audio(c),
            "backbone_pass": lambda c=chunk, x=x, t=t, cond=cond: model.backbone.forward_chunk(
                x, t, c.backbone_refs, cond, c.history
            ),
            "refiner": lambda c=chunk, x0=x0, cond=cond: model.refiner.refine(
                x0, c.noise[:, 1], c.refiner_refs, cond
            ),
            "context_noise": lambda c=chunk, x0=x0: add_noise(x0, c.noise[:, 2], 0.1),
            "decode": lambda c=chunk, x0=x0: (
                model.vae.decode_step(x0, c.decode_caches[0])
                if len(c.decode_caches) == 1
                else model.vae.decode_step(x0, type(c.decode_caches[0]).merge(c.decode_caches))
            ),
        }
    times = {b: {name: [] for name in stages[b]} for b in stages}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for b in stages:
                for name, fn in stages[b].items():
                    started = time.thread_time()
                    fn()
                    times[b][name].append(time.thread_time() - started)
    report = {"batch": args.batch, "threads": torch.get_num_threads(), "stages": {}}
    big = args.batch
    for name in stages[1]:
        t1 = min(times[1][name]) * 1000
        tb = min(times[big][name]) * 1000
        per_row = (tb - t1) / (big - 1)
        report["stages"][name] = {
            "t1_ms": round(t1, 2),
            f"t{big}_ms": round(tb, 2),
            "per_row_ms": round(per_row, 2),
            "fixed_ms": round(t1 - per_row, 2),
            "t1_median_ms": round(float(np.median(times[1][name])) * 1000, 2),
            f"t{big}_median_ms": round(float(np.median(times[big][name])) * 1000, 2),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
