"""Model size, analytic FLOPs and the streaming generator benchmark.

- `model_info(cfg)`: parameter counts (the model is built on the meta device, so lpm-17b costs no
  memory) and analytic FLOPs of one streaming chunk of the transformers: matmuls and attention of
  `backbone_steps` denoising passes + the noisy-history pass of the backbone + one refiner pass
  (multiply-add = 2 FLOPs; VAE decode and audio encode are not included there — the benchmark
  measures the whole step with torch.utils.flop_counter instead).
- `bench_generator(...)`: runs a real session for N seconds of media and reports the real-time
  factor (compute time / media time), first-frame latency (open + first chunk), fps, MFU (achieved
  FLOP/s of the measured step FLOPs / a matmul's FLOP/s in the model's dtype measured in the same
  run) and RSS growth. `backend` (`onnx.backend.BackendChoice`) picks the generator; with
  onnxruntime, eager torch (the same CPU fp32 weights, moved to `device`) steps its own session of
  the same character, prompt, seed and audio in the same run, interleaved chunk by chunk
  (`onnx.bench.interleaved_steps`), and the result adds `onnxruntime_vs_torch` (median chunk
  throughput ratio, > 1 = onnxruntime faster) and `psnr_vs_torch_db` (lowest per-chunk PSNR of
  the two backends' frames). FLOPs and MFU of an onnxruntime run count the torch step's FLOPs
  (the same work); RSS growth then covers both sessions. No frames are kept while measuring.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lpm_npc.config import SAMPLE_RATE, ModelConfig
from lpm_npc.engine.protocol import ChunkAudio


def transformer_flops(cfg: ModelConfig, n_layers: int, history_tokens: int, refs: int) -> int:
    """FLOPs of one DiT pass over one chunk with `history_tokens` history keys (analytic)."""
    d, f, a = cfg.dim, cfg.ffn_dim, cfg.audio_dim
    n = cfg.tokens_per_chunk
    lt = cfg.text_max_tokens
    na = cfg.n_audio_tokens * cfg.chunk_latent_frames
    keys = refs * cfg.tokens_per_latent_frame + history_tokens + n
    per_layer = (
        2 * n * d * 4 * d  # self-attn qkv + out
        + 4 * n * keys * d  # QK^T and PV
        + 2 * n * d * 2 * d
        + 2 * lt * d * 2 * d
        + 4 * n * lt * d  # text cross-attn
        + 2 * n * d * 2 * d
        + 2 * na * a * 2 * d
        + 4 * n * cfg.n_audio_tokens * d  # audio x-attn
        + 2 * n * d * f * 2  # MLP
    )
    embed = 2 * n * cfg.latent_channels * 4 * d * 2 + 2 * lt * (cfg.text_dim * d + d * d)
    return n_layers * per_layer + embed


def chunk_flops(cfg: ModelConfig, refs: int | None = None) -> int:
    """Analytic transformer FLOPs of one steady-state chunk (full history ring)."""
    refs = cfg.max_references if refs is None else refs
    history = cfg.history_chunks * cfg.tokens_per_chunk
    backbone = transformer_flops(cfg, cfg.n_layers, history, refs)
    refiner = transformer_flops(cfg, cfg.refiner_layers, 0, refs)
    return (cfg.backbone_steps + 1) * backbone + refiner


def model_info(cfg: ModelConfig) -> dict:
    """Parameter counts (meta device) and analytic per-chunk numbers."""
    from lpm_npc.model.lpm import LPM

    with torch.device("meta"):
        model = LPM(cfg)
    chunk_ms = 1000.0 * cfg.samples_per_chunk / SAMPLE_RATE
    flops = chunk_flops(cfg)
    return {
        "preset": cfg.name,
        **model.parameter_counts(),
        "flops_per_chunk": flops,
        "flops_method": "analytic: transformer matmuls + attention, steady state, max references",
        "tflops_per_second_of_media": flops / (chunk_ms / 1000.0) / 1e12,
        "tokens_per_chunk": cfg.tokens_per_chunk,
        "reference_tokens": cfg.max_references * cfg.tokens_per_latent_frame,
        "context_tokens": cfg.history_chunks * cfg.tokens_per_chunk,
        "frames_per_chunk": cfg.frames_per_chunk,
        "samples_per_chunk": cfg.samples_per_chunk,
        "chunk_ms": chunk_ms,
        "image_size": cfg.image_size,
        "latent_size": cfg.latent_size,
        "backbone_steps": cfg.backbone_steps,
        "history_chunks": cfg.history_chunks,
    }


def measure_matmul_gflops(
    dtype: torch.dtype, device: str = "cpu", size: int | None = None, seconds: float = 0.5
) -> float:
    """Peak-ish GFLOP/s of a square matmul in `dtype` on `device`, measured now."""
    size = size or (8192 if device.startswith("cuda") else 512)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    _sync(device)
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rss_mb() -> float:
    """Resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class GeneratorBench:
    preset: str
    checkpoint: str  # directory, or "random" when no checkpoint was found
    dtype: str
    device: str
    threads: int
    compiled: bool
    size: int
    params: int
    seconds: float  # media seconds generated
    chunks: int
    rtf: float  # compute time / media time (< 1 is faster than real time)
    first_frame_ms: float  # open() + first chunk
    prepare_ms: float  # reference encoding (once per character; not in first_frame_ms)
    chunk_ms_mean: float
    chunk_ms_p95: float
    fps: float  # video frames generated per second of compute
    flops_per_chunk: int  # measured with torch.utils.flop_counter over one whole step
    flops_per_chunk_transformer: int  # analytic (transformers only)
    achieved_gflops: float
    peak_gflops: float  # square matmul in the model's dtype, measured in this run
    mfu: float  # achieved / peak
    rss_growth_mb: float  # RSS after the run minus after the first chunk
    backend: str = "torch"  # torch | onnxruntime
    # onnxruntime only (None otherwise; as_dict leaves them out):
    providers: tuple[str, ...] | None = None  # execution providers of the sessions
    ort_threads: int | None = None  # --ort-threads (0 = onnxruntime's default)
    ort_decoder: str | None = None  # fp32 | int8 | fp16
    export_dir: str | None = None
    torch_chunk_ms_mean: float | None = None  # the interleaved eager-torch session
    onnxruntime_vs_torch: float | None = None  # median chunk throughput ratio (> 1 = faster)
    psnr_vs_torch_db: float | None = None  # lowest per-chunk PSNR of the two backends' frames


def _bench_character(generator, cfg: ModelConfig):
    """The references of a rendered procedural character, prepared."""
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.sheet import render_sheet, sheet_to_array

    # The renderer draws sheets of 64 px and more; smaller models get it resized.
    sheet = render_sheet(CharacterSpec.from_seed(1), max(cfg.image_size, 64))
    images, roles = sheet_to_array(sheet, cfg.image_size)
    return generator.prepare(images, roles, name=sheet.name)


def _bench_audio(seconds: float) -> np.ndarray:
    from lpm_npc.synth.speech import babble

    return babble(1, seconds).astype(np.float32)


def bench_generator(
    *,
    preset: str = "tiny",
    checkpoint: str | None = None,
    seconds: float = 10.0,
    threads: int | None = None,
    dtype: str = "fp32",
    compile: bool = False,
    size: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    backend=None,
) -> GeneratorBench:
    """Run the benchmark (see the module docstring); backend: a `BackendChoice` (None = torch)."""
    from torch.utils.flop_counter import FlopCounterMode
    from tqdm import tqdm

    from lpm_npc.engine.weights import checkpoint_exists, default_checkpoint_dir
    from lpm_npc.onnx.backend import BackendChoice, make_generator
    from lpm_npc.onnx.bench import interleaved_steps, psnr, throughput_ratio

    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"dtype must be fp32 or bf16, got {dtype!r}")
    choice = backend or BackendChoice()
    choice.check(device=device, compile=compile, dtype=dtype)
    if threads is not None:
        torch.set_num_threads(threads)
    directory = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    found = checkpoint_exists(directory)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    generator = make_generator(
        choice,
        checkpoint=directory,
        random_weights=not found,
        preset=preset,
        device=device,
        dtype=dtype,
        compile=compile,
    )
    cfg, model = generator.cfg, generator.model
    onnx = choice.backend == "onnxruntime"
    start = time.perf_counter()
    character = _bench_character(generator, cfg)
    prepare_ms = (time.perf_counter() - start) * 1000
    n_chunks = max(2, int(round(seconds * SAMPLE_RATE / cfg.samples_per_chunk)))
    speak = _bench_audio(n_chunks * cfg.samples_per_chunk / SAMPLE_RATE + 1)
    listen = np.zeros_like(speak)
    per = cfg.samples_per_chunk

    def chunk(k: int) -> ChunkAudio:
        lo = (k % (len(speak) // per - 1)) * per  # the babble track loops; the clock does not
        return ChunkAudio(k * per, speak[lo : lo + per], listen[lo : lo + per])

    start = time.perf_counter()
    state = generator.open(character, prompt="cheerful", seed=0, size=size)
    generator.step([state], [chunk(0)])
    first_frame_ms = (time.perf_counter() - start) * 1000
    runs = {"main": (generator, state, None)}
    counted = generator
    if onnx:  # eager torch on the same weights, same character, prompt, seed and audio
        import copy

        from lpm_npc.engine.generator import StreamingGenerator

        baseline = StreamingGenerator(cfg, copy.deepcopy(model).to(device))
        base_state = baseline.open(_bench_character(baseline, cfg), prompt="cheerful", size=size)
        baseline.step([base_state], [chunk(0)])
        runs["torch"] = (baseline, base_state, None)
        counted = baseline  # onnxruntime's work is invisible to the flop counter
    with FlopCounterMode(display=False) as counter:
        counted.step([runs["torch" if onnx else "main"][1]], [chunk(1)])
    step_flops = counter.get_total_flops()
    if onnx:
        generator.step([state], [chunk(1)])
    rss0 = rss_mb()
    psnrs: list[float] = []  # per chunk, onnxruntime vs torch; frames are not kept (RSS)

    def measured(frames: dict[str, np.ndarray]) -> None:
        if onnx:
            psnrs.append(psnr(frames["main"], frames["torch"]))
        bar.update(1)

    with tqdm(total=n_chunks, disable=not progress, desc="chunks", file=None) as bar:
        times, _ = interleaved_steps(
            runs, lambda k: chunk(k + 2), chunks=n_chunks, keep_frames=False, on_chunk=measured
        )
    rss_growth = rss_mb() - rss0
    main = times["main"]
    compute = float(np.sum(main))
    media = len(main) * per / SAMPLE_RATE
    peak = measure_matmul_gflops(torch_dtype, device)
    achieved = step_flops * len(main) / compute / 1e9
    extra = {}
    if onnx:
        extra = {
            "providers": tuple(generator.providers),
            "ort_threads": choice.ort_threads,
            "ort_decoder": choice.ort_decoder,
            "export_dir": str(getattr(generator, "export_dir", "")),
            "torch_chunk_ms_mean": 1000 * float(np.mean(times["torch"])),
            "onnxruntime_vs_torch": throughput_ratio(main, times["torch"]),
            "psnr_vs_torch_db": round(min(psnrs), 2),
        }
    return GeneratorBench(
        preset=cfg.name,
        checkpoint=str(directory) if found else "random",
        dtype=dtype,
        device=device,
        threads=torch.get_num_threads(),
        compiled=compile,
        size=state.size,
        params=sum(p.numel() for p in model.parameters()),
        seconds=media,
        chunks=len(main),
        rtf=compute / media,
        first_frame_ms=first_frame_ms,
        prepare_ms=prepare_ms,
        chunk_ms_mean=1000 * compute / len(main),
        chunk_ms_p95=1000 * float(np.percentile(main, 95)),
        fps=len(main) * cfg.frames_per_chunk / compute,
        flops_per_chunk=int(step_flops),
        flops_per_chunk_transformer=chunk_flops(cfg, len(character.roles)),
        achieved_gflops=achieved,
        peak_gflops=peak,
        mfu=achieved / peak,
        rss_growth_mb=rss_growth,
        backend=choice.backend,
        **extra,
    )


def as_dict(result: GeneratorBench) -> dict:
    """The result as a flat dict; the onnxruntime-only fields are left out of a torch run."""
    return {key: value for key, value in asdict(result).items() if value is not None}
