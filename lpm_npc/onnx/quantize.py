"""Reduced-precision variants of the exported VAE decoder, and the frames to judge them by.

`write_decoder_variant(export_dir, variant, model=)` writes `decoder.<variant>.onnx` next to
`decoder.onnx` (the generator loads it with `OrtOptions(decoder_variant=...)`); same inputs and
outputs, all float32 at the interface:
- "fp16": every float weight stored as float16 and cast back to float32 inside the graph. Halves
  the weight bytes; onnxruntime folds the casts at load, so the CPU still computes in fp32 (no
  speed change is expected; it is a size and precision experiment).
- "int8": static QDQ quantisation (`onnxruntime.quantization.quantize_static`): int8 per-channel
  weights, uint8 activations calibrated (min-max) on latents of procedurally rendered training
  clips streamed through the decoder, so the conv caches see their real ranges too.

`ladder_clips(n, size, frames, held_out=True)` renders clips of characters never trained on and
`decoder_psnr(...)` measures the "truth through the VAE" rung of the quality ladder for any decoder
session: the torch encoder's latents, decoded chunk by chunk, against the rendered truth. Whether
a variant "holds quality" is that PSNR next to the fp32 decoder's (docs/onnx.md).

This module needs onnx and onnxruntime; it never changes `decoder.onnx`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from lpm_npc.onnx.manifest import Manifest

log = logging.getLogger(__name__)

VARIANTS = ("int8", "fp16")
CALIBRATION_SEED = 11  # ClipDataset seed of the calibration clips (training characters)
LADDER_SEED = 12  # ClipDataset seed of the held-out measurement clips


def _decoder_path(export_dir: Path) -> Path:
    return export_dir / Manifest.read(export_dir).graphs["decoder"].file


def fp16_weights(source: Path, target: Path) -> None:
    """Store every float32 initializer as float16 behind a Cast back to float32."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    casts = []
    kept = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) == 0:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16))
        half.name = f"{init.name}__fp16"
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def ladder_clips(n_clips: int, size: int, n_frames: int, *, held_out: bool) -> np.ndarray:
    """uint8 (n_clips, T, size, size, 3) rendered clips, one character each: held-out characters
    (never trained on; for measuring) or training ones (for calibration)."""
    from lpm_npc.synth.dataset import ClipDataset, held_out_character_seeds

    if held_out:
        seeds = held_out_character_seeds(n_clips)
        dataset = ClipDataset(LADDER_SEED, size, n_frames, character_seeds=seeds)
    else:
        dataset = ClipDataset(CALIBRATION_SEED, size, n_frames, n_characters=n_clips)
    return np.stack([dataset[i].frames for i in range(n_clips)])


@torch.no_grad()
def clip_latents(model, clips: np.ndarray) -> np.ndarray:
    """Rendered clips -> normalised latents (n, C, T/4, h, w) from the torch encoder."""
    from lpm_npc.synth.dataset import to_model_video

    return model.vae.encode(to_model_video(torch.from_numpy(clips))).numpy()


def stream_decode(session, latents: np.ndarray, cache_shapes: list[tuple[int, ...]]):
    """Decode (B, C, Tl, h, w) chunk by chunk with an onnxruntime decoder session.

    Yields (feeds, video chunk (B, 3, 4L, H, W)) per chunk: the feeds are what calibration needs.
    """
    b = latents.shape[0]
    chunk = 1  # one latent frame per call: the generator's granularity for every preset today
    cache = [np.zeros((b, *shape), np.float32) for shape in cache_shapes]
    names = [o.name for o in session.get_outputs()]
    for start in range(0, latents.shape[2], chunk):
        feeds = {"latents": np.ascontiguousarray(latents[:, :, start : start + chunk])}
        feeds.update({f"decode_cache_{i}": c for i, c in enumerate(cache)})
        out = dict(zip(names, session.run(names, feeds)))
        cache = [out[f"decode_cache_{i}_out"] for i in range(len(cache))]
        yield feeds, out["video"]


def _cache_shapes(model) -> list[tuple[int, ...]]:
    return [tuple(s.shape[1:]) for s in model.vae.init_decode_cache(1, device="cpu").slots]


def decoder_psnr(session, model, clips: np.ndarray) -> float:
    """PSNR (dB) of truth -> torch encoder -> `session` decoder -> uint8, against the truth."""
    latents = clip_latents(model, clips)
    chunks = [video for _, video in stream_decode(session, latents, _cache_shapes(model))]
    video = np.concatenate(chunks, axis=2).clip(-1, 1)  # (n, 3, T, H, W)
    pixels = np.round((video + 1) * 127.5).transpose(0, 2, 3, 4, 1)
    mse = float(np.mean((pixels - clips.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def int8_static(source: Path, target: Path, model, *, n_clips: int, n_frames: int = 16) -> None:
    """Static int8 QDQ quantisation of the decoder, calibrated on `n_clips` rendered training
    clips of `n_frames` frames each."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    clips = ladder_clips(n_clips, model.cfg.image_size, n_frames, held_out=False)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    latents = clip_latents(model, clips)
    feeds = [f for f, _ in stream_decode(session, latents, _cache_shapes(model))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def write_decoder_variant(
    export_dir: str | Path, variant: str, *, model, calibration_clips: int = 8
) -> Path:
    """Write decoder.<variant>.onnx for `variant` in VARIANTS; -> its path.

    model: the exported LPM (the int8 calibration encodes `calibration_clips` rendered clips with
    its VAE).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    directory = Path(export_dir)
    source = _decoder_path(directory)
    target = source.with_name(f"{source.stem}.{variant}.onnx")
    if variant == "fp16":
        fp16_weights(source, target)
    else:
        int8_static(source, target, model, n_clips=calibration_clips)
    log.info("wrote %s", target)
    return target
