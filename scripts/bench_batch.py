"""Batched vs one-by-one generator steps, interleaved in one process (background load hits both).

    OMP_NUM_THREADS=1 python scripts/bench_batch.py --batch 4 --rounds 12 [--clock cpu] [--profile]

Opens 2 x `batch` sessions of one character (the three-image sheet `bench serve` uses), fills
their history rings, then per round: one batched `step` of `batch` sessions, then `batch` steps of
one session each. Reports `batched_vs_sequential` = (sum of the one-by-one times) / (sum of the
batched times) and the same from medians; `--profile` prints a torch.profiler table of both.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image

from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.engine.protocol import ChunkAudio
from lpm_npc.serve.testing import sheet_images


def _character(generator: StreamingGenerator):
    images, roles = [], []
    for role, label, _, png in sheet_images(seed=0):
        image = Image.open(io.BytesIO(png)).convert("RGB").resize((generator.cfg.image_size,) * 2)
        images.append(np.asarray(image))
        roles.append((role, label))
    return generator.prepare(np.stack(images), roles, name="bench")


def _time_stages(generator: StreamingGenerator, times: dict[str, float]) -> None:
    """Wrap the step's stages so each call adds its wall time to `times[name]`."""
    model = generator.model
    targets = {
        "schedule": (generator, "_schedule"),
        "postprocess": (generator, "_postprocess"),
        "audio": (model, "_encode_audio"),
        "backbone": (model.backbone, "forward_chunk"),
        "refiner": (model.refiner, "refine"),
        "decode": (model.vae, "decode_step"),
    }
    for name, (owner, attr) in targets.items():
        inner = getattr(owner, attr)

        def timed(*a, _inner=inner, _name=name, **kw):
            started = time.perf_counter()
            try:
                return _inner(*a, **kw)
            finally:
                times[_name] = times.get(_name, 0.0) + time.perf_counter() - started

        setattr(owner, attr, timed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="samples/checkpoints/tiny")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--shapes", action="store_true", help="profile: group by input shape")
    parser.add_argument("--rows", type=int, default=30, help="profile: table rows")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--stages", action="store_true", help="time each stage of the step")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this thread's CPU time (with 1 thread, robust to being descheduled)",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = StreamingGenerator.from_checkpoint(args.checkpoint)
    cfg = generator.cfg
    character = _character(generator)
    batched = [generator.open(character, seed=i) for i in range(args.batch)]
    single = [generator.open(character, seed=i) for i in range(args.batch)]
    rng = np.random.default_rng(0)
    n = cfg.samples_per_chunk

    def audio(k: int) -> ChunkAudio:
        pcm = rng.standard_normal((2, n)).astype(np.float32) * 0.1
        return ChunkAudio(start_sample=k * n, speak=pcm[0], listen=pcm[1])

    def run_batched(k: int) -> float:
        started = clock()
        generator.step(batched, [audio(k) for _ in batched])
        return clock() - started

    def run_single(k: int) -> float:
        started = clock()
        for state in single:
            generator.step([state], [audio(k)])
        return clock() - started

    stage_times: dict[str, float] = {}
    if args.stages:
        _time_stages(generator, stage_times)
    for k in range(args.warmup):
        run_batched(k)
        run_single(k)
    times_b, times_s = [], []
    stages_b: dict[str, float] = {}
    stages_s: dict[str, float] = {}
    for k in range(args.warmup, args.warmup + args.rounds):
        stage_times.clear()
        times_b.append(run_batched(k))
        for name, t in stage_times.items():
            stages_b[name] = stages_b.get(name, 0.0) + t
        stage_times.clear()
        times_s.append(run_single(k))
        for name, t in stage_times.items():
            stages_s[name] = stages_s.get(name, 0.0) + t
    report = {
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "batched_ms": 1000 * statistics.median(times_b),
        "one_by_one_ms": 1000 * statistics.median(times_s),
        "batched_vs_sequential": sum(times_s) / sum(times_b),
        "batched_vs_sequential_median": statistics.median(s / b for s, b in zip(times_s, times_b)),
    }
    if args.stages:
        report["stages_ms_per_round"] = {
            name: {
                "batched": round(1000 * stages_b.get(name, 0.0) / args.rounds, 2),
                "one_by_one": round(1000 * stages_s.get(name, 0.0) / args.rounds, 2),
            }
            for name in stages_s
        }
    print(json.dumps(report, indent=1))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        k = args.warmup + args.rounds
        for name, fn in (("batched", run_batched), ("one_by_one", run_single)):
            with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
                for r in range(3):
                    fn(k + r)
            print(f"=== {name} (3 rounds)")
            print(
                prof.key_averages(group_by_input_shape=args.shapes).table(
                    sort_by="self_cpu_time_total", row_limit=args.rows
                )
            )


if __name__ == "__main__":
    main()
