"""onnxruntime vs eager torch, interleaved in one run: chunk throughput ratios and frame agreement.

`compare_backends(export_dir, variants, ...)` opens one session of the same character, prompt and
seed on every backend variant (eager torch at some thread count, or onnxruntime with some
`OrtOptions`) and steps them in turn, one chunk each per round, feeding the same audio. On a
machine shared with other work (a training job) absolute times drift; interleaving makes every
variant see the same drift, so only the ratios are reported:
- `<variant>_vs_<baseline>`: chunk throughput of the variant over that of its baseline (the
  torch variant with the same thread count); > 1 means faster.
- `psnr_vs_torch_db`: PSNR of the variant's frames against the same-thread torch frames over every
  measured chunk (the two backends draw the same noise, so they should agree).
Medians of per-chunk step times are used (robust to a descheduled chunk). `interleaved_steps`,
`throughput_ratio`, `psnr` and `min_psnr` are the pieces; `lpm-npc bench generator --backend
onnxruntime` uses them too (its `onnxruntime_vs_torch`).

`python -m lpm_npc.onnx.bench --export DIR [--checkpoint DIR] [--chunks N] [--only NAME...]
[--json]` runs the option matrix of docs/onnx.md (or the named variants of it). This module measures; it does not export or quantise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lpm_npc.engine.protocol import ChunkAudio
from lpm_npc.onnx.runtime import OrtOptions


@dataclass(frozen=True)
class Variant:
    """One backend configuration of the comparison."""

    name: str  # key in the report
    threads: int  # torch intra-op threads while this variant steps (and onnxruntime's, below)
    options: OrtOptions | None = None  # None = eager torch


def default_variants(threads: tuple[int, ...] = (1, 2)) -> list[Variant]:
    """The measured matrix: torch and onnxruntime at each thread count, the optimisation levels,
    spinning, and the decoder variants at one thread."""
    variants = []
    for n in threads:
        variants.append(Variant(f"torch_t{n}", n))
        variants.append(Variant(f"ort_all_t{n}", n, OrtOptions(intra_op_threads=n)))
        variants.append(
            Variant(f"ort_all_spin_t{n}", n, OrtOptions(intra_op_threads=n, allow_spinning=True))
        )
    one = threads[0]
    for level in ("disable", "basic", "extended"):
        options = OrtOptions(graph_optimization=level, intra_op_threads=one)
        variants.append(Variant(f"ort_{level}_t{one}", one, options))
    for decoder in ("fp16", "int8"):
        options = OrtOptions(intra_op_threads=one, decoder_variant=decoder)
        variants.append(Variant(f"ort_all_{decoder}_decoder_t{one}", one, options))
    return variants


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def compare_backends(
    export_dir: str | Path,
    variants: list[Variant],
    *,
    checkpoint: str | Path | None = None,
    chunks: int = 16,
    warmup: int = 2,
    seed: int = 0,
) -> dict:
    """Interleaved comparison (see the module docstring) -> a flat dict of ratios and PSNRs."""
    from lpm_npc.engine.generator import StreamingGenerator
    from lpm_npc.engine.weights import load_lpm
    from lpm_npc.onnx.generator import OnnxStreamingGenerator
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.sheet import render_sheet, sheet_to_array

    if chunks < 1 or warmup < 0:
        raise ValueError(f"chunks must be >= 1 and warmup >= 0, got {chunks}, {warmup}")
    cfg, model = load_lpm(checkpoint)
    directory = Path(export_dir)
    available = [v for v in variants if v.options is None or _variant_file_exists(directory, v)]
    skipped = sorted({v.name for v in variants} - {v.name for v in available})
    sheet = render_sheet(CharacterSpec.from_seed(1), cfg.image_size)
    images, roles = sheet_to_array(sheet, cfg.image_size)
    sessions = {}
    for v in available:
        generator = (
            StreamingGenerator(cfg, model)
            if v.options is None
            else OnnxStreamingGenerator(cfg, model, directory, options=v.options)
        )
        character = generator.prepare(images, [tuple(r) for r in roles], name="bench")
        sessions[v.name] = (generator, generator.open(character, prompt="cheerful", seed=seed))
    rng = np.random.default_rng(seed)
    n = cfg.samples_per_chunk

    def audio(k: int) -> ChunkAudio:
        pcm = (rng.standard_normal((2, n)) * 0.1).astype(np.float32)
        return ChunkAudio(k * n, pcm[0], pcm[1])

    runs = {v.name: (*sessions[v.name], v.threads) for v in available}
    times, frames = interleaved_steps(runs, audio, chunks=chunks, warmup=warmup)
    report: dict = {"model": cfg.name, "chunks": chunks, "skipped": skipped}
    for v in available:
        report[f"{v.name}_ms_per_chunk"] = round(1000 * statistics.median(times[v.name]), 2)
        baseline = f"torch_t{v.threads}"
        if v.options is not None and baseline in times:
            report[f"{v.name}_vs_{baseline}"] = throughput_ratio(times[v.name], times[baseline])
            report[f"{v.name}_psnr_vs_torch_db"] = min_psnr(frames[v.name], frames[baseline])
    return report


def interleaved_steps(
    runs: dict[str, tuple],
    audio: Callable[[int], ChunkAudio],
    *,
    chunks: int,
    warmup: int = 0,
    keep_frames: bool = True,
    on_chunk: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]]]:
    """Step every run `{name: (generator, state, torch threads or None)}` one chunk each per
    round, in order, on the same `audio(k)`; -> (seconds per measured step, frames per measured
    step) by name. The first `warmup` rounds are not kept; with `keep_frames=False` no frames are
    kept (`on_chunk` still gets each measured round's {name: frames}). torch's thread count is
    restored afterwards."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    frames: dict[str, list[np.ndarray]] = {name: [] for name in runs}
    previous_threads = torch.get_num_threads()
    try:
        for k in range(warmup + chunks):
            chunk = audio(k)
            produced: dict[str, np.ndarray] = {}
            for name, (generator, state, threads) in runs.items():
                if threads:
                    torch.set_num_threads(threads)
                start = time.perf_counter()
                out = generator.step([state], [chunk])
                elapsed = time.perf_counter() - start
                if k >= warmup:
                    times[name].append(elapsed)
                    produced[name] = out[0].frames
                    if keep_frames:
                        frames[name].append(out[0].frames)
            if on_chunk is not None and k >= warmup:
                on_chunk(produced)
    finally:
        torch.set_num_threads(previous_threads)
    return times, frames


def throughput_ratio(times: list[float], baseline: list[float]) -> float:
    """Chunk throughput of `times` over `baseline` (median step times); > 1 is faster."""
    return round(statistics.median(baseline) / statistics.median(times), 3)


def min_psnr(frames: list[np.ndarray], baseline: list[np.ndarray]) -> float:
    """The lowest per-chunk PSNR (dB) of `frames` against `baseline`."""
    return round(min(psnr(a, b) for a, b in zip(frames, baseline)), 2)


def _variant_file_exists(directory: Path, variant: Variant) -> bool:
    suffix = variant.options.decoder_variant
    return not suffix or (directory / f"decoder.{suffix}.onnx").is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, required=True, help="an `lpm-npc export onnx` dir")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: embedded tiny")
    parser.add_argument("--chunks", type=int, default=16, help="measured chunks per variant")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="variant names to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    variants = default_variants(tuple(args.threads))
    if args.only:
        unknown = sorted(set(args.only) - {v.name for v in variants})
        if unknown:
            parser.error(f"--only: unknown variants {unknown}; known: {[v.name for v in variants]}")
        variants = [v for v in variants if v.name in args.only]
    report = compare_backends(
        args.export,
        variants,
        checkpoint=args.checkpoint,
        chunks=args.chunks,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            sys.stdout.write(f"{key:>40}: {value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
