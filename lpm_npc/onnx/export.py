"""The exporter: an `LPM` -> four ONNX graphs (`wrappers.py`) + `manifest.json`.

`export_onnx(model, out_dir, config=..., checkpoint_sha256=...)` writes

    audio.onnx     AudioStep      (speak and listen rows in one batch)
    backbone.onnx  BackbonePass   (denoising passes: commit=False; noisy-history pass: True)
    refiner.onnx   RefinerPass
    decoder.onnx   DecodeStep
    manifest.json  names, shapes and dtypes of every input and output, the weights' digests

with the torch.export-based (dynamo) exporter, fp32, opset `OPSET`. Dynamic axes: `batch` on
every graph; `reference_tokens` (R*P: 1..max_references references) and `history_tokens` (S*P:
any ring size) on the DiT graphs. The chunk length, latent side and sample count per chunk are
fixed by the config (one chunk per call, as the generator runs). Each graph is traced at batch 2
(torch.export specialises axes of size 0 and 1), with a history ring of max(history_chunks, 1)
slots (a config with no history runs with one slot that is never valid). A model with
`ModelConfig.reference_concat` on is refused before anything is written (the backbone graph has
no front-latent input; `wrappers.require_exportable`).

This module needs `onnx` and `onnxscript` (the `[onnx]` extra); it does not run the graphs.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lpm_npc.config import ModelConfig
from lpm_npc.onnx.manifest import GRAPHS, GraphSpec, Manifest, TensorSpec, weights_digest
from lpm_npc.onnx.wrappers import (
    AudioStep,
    BackbonePass,
    DecodeStep,
    RefinerPass,
    require_exportable,
)

log = logging.getLogger(__name__)

OPSET = 18  # DFT-17 and LayerNormalization-17 are in; runs on onnxruntime >= 1.17
TRACE_BATCH = 2  # batch size the graphs are traced at (sizes 0 and 1 would be specialised)
TRACE_REFERENCES = 2  # references per row while tracing (any 1..max_references runs)
EXTERNAL_DATA_BYTES = 1 << 30  # graphs with more weight bytes keep them in a side file
_ONNX_DTYPES = {1: "float32", 7: "int64", 9: "bool", 10: "float16", 16: "bfloat16", 6: "int32"}


@dataclass(frozen=True)
class GraphPlan:
    """What to trace for one graph: the wrapper, example inputs and their names and axes."""

    module: nn.Module
    args: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]  # input name -> {axis: dynamic axis name}


def _audio_plan(model: nn.Module, cfg: ModelConfig) -> GraphPlan:
    encoder = model.audio_encoder
    cache = encoder.init_cache(TRACE_BATCH)
    names = tuple(f"audio_cache_{i}" for i in range(len(cache.slots)))
    pcm = torch.randn(TRACE_BATCH, cfg.samples_per_chunk) * 0.1
    track = torch.tensor([0, 1], dtype=torch.int64)
    return GraphPlan(
        module=AudioStep(encoder),
        args=(pcm, track, *cache.slots),
        input_names=("pcm", "track", *names),
        output_names=("tokens", *(f"{n}_out" for n in names)),
        dynamic_axes={name: {0: "batch"} for name in ("pcm", "track", *names)},
    )


def _decoder_plan(model: nn.Module, cfg: ModelConfig) -> GraphPlan:
    cache = model.vae.init_decode_cache(TRACE_BATCH)
    names = tuple(f"decode_cache_{i}" for i in range(len(cache.slots)))
    latents = torch.randn(
        TRACE_BATCH, cfg.latent_channels, cfg.chunk_latent_frames, cfg.latent_size, cfg.latent_size
    )
    return GraphPlan(
        module=DecodeStep(model.vae),
        args=(latents, *cache.slots),
        input_names=("latents", *names),
        output_names=("video", *(f"{n}_out" for n in names)),
        dynamic_axes={name: {0: "batch"} for name in ("latents", *names)},
    )


def _conditioning_args(cfg: ModelConfig) -> tuple[Tensor, ...]:
    b, frames = TRACE_BATCH, cfg.chunk_latent_frames
    text = torch.randn(b, cfg.text_max_tokens, cfg.text_dim)
    text_mask = torch.ones(b, cfg.text_max_tokens, dtype=torch.bool)
    text_mask[1, cfg.text_max_tokens // 2 :] = False
    speak = torch.randn(b, frames, cfg.n_audio_tokens, cfg.audio_dim)
    listen = torch.randn(b, frames, cfg.n_audio_tokens, cfg.audio_dim)
    return text, text_mask, speak, listen


def _reference_args(cfg: ModelConfig, n_layers: int) -> tuple[Tensor, ...]:
    tokens = TRACE_REFERENCES * cfg.tokens_per_latent_frame
    shape = (TRACE_BATCH, n_layers, cfg.n_heads, tokens, cfg.head_dim)
    length = torch.tensor([tokens, cfg.tokens_per_latent_frame], dtype=torch.int64)
    return torch.randn(shape), torch.randn(shape), length


CONDITIONING_INPUTS = ("text", "text_mask", "speak", "listen")
REFERENCE_INPUTS = ("reference_keys", "reference_values", "reference_length")
HISTORY_INPUTS = ("history_keys", "history_values", "history_next", "history_length")


def _dit_axes(names: tuple[str, ...]) -> dict[str, dict[int, str]]:
    axes = {name: {0: "batch"} for name in names if name != "commit"}
    for name in ("reference_keys", "reference_values"):
        axes[name] = {0: "batch", 3: "reference_tokens"}
    for name in ("history_keys", "history_values"):
        if name in axes:
            axes[name] = {0: "batch", 3: "history_tokens"}
    return axes


def _backbone_plan(model: nn.Module, cfg: ModelConfig) -> GraphPlan:
    b, frames = TRACE_BATCH, cfg.chunk_latent_frames
    slots = max(cfg.history_chunks, 1)
    x_t = torch.randn(b, cfg.latent_channels, frames, cfg.latent_size, cfg.latent_size)
    t = torch.full((b, frames), 0.5)
    ring = (b, cfg.n_layers, cfg.n_heads, slots * cfg.tokens_per_chunk, cfg.head_dim)
    history = (
        torch.randn(ring),
        torch.randn(ring),
        torch.tensor([0, slots - 1], dtype=torch.int64),
        torch.tensor([slots, 1], dtype=torch.int64).clamp(max=slots),
    )
    names = ("x_t", "t", *CONDITIONING_INPUTS, *REFERENCE_INPUTS, *HISTORY_INPUTS, "commit")
    return GraphPlan(
        module=BackbonePass(model.backbone, cfg),
        args=(
            x_t,
            t,
            *_conditioning_args(cfg),
            *_reference_args(cfg, cfg.n_layers),
            *history,
            torch.tensor(True),
        ),
        input_names=names,
        output_names=("prediction", *(f"{n}_out" for n in HISTORY_INPUTS)),
        dynamic_axes=_dit_axes(names),
    )


def _refiner_plan(model: nn.Module, cfg: ModelConfig) -> GraphPlan:
    b, frames = TRACE_BATCH, cfg.chunk_latent_frames
    shape = (b, cfg.latent_channels, frames, cfg.latent_size, cfg.latent_size)
    names = ("x0", "noise", *CONDITIONING_INPUTS, *REFERENCE_INPUTS)
    return GraphPlan(
        module=RefinerPass(model.refiner, cfg),
        args=(
            torch.randn(shape),
            torch.randn(shape),
            *_conditioning_args(cfg),
            *_reference_args(cfg, cfg.refiner_layers),
        ),
        input_names=names,
        output_names=("refined",),
        dynamic_axes=_dit_axes(names),
    )


PLANS = {
    "audio": _audio_plan,
    "backbone": _backbone_plan,
    "refiner": _refiner_plan,
    "decoder": _decoder_plan,
}


def _dynamic_shapes(plan: GraphPlan) -> tuple:
    """Per positional input, {axis: Dim} with one shared Dim per dynamic axis name; the inputs
    of a `*caches` parameter are grouped in one tuple, as torch.export sees them."""
    dims: dict[str, torch.export.Dim] = {}
    shapes: list = []
    for name in plan.input_names:
        axes = plan.dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        shapes.append(
            {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
        )
    parameters = inspect.signature(plan.module.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        fixed = sum(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
        return (*shapes[:fixed], tuple(shapes[fixed:]))
    return tuple(shapes)


def _tensor_specs(values) -> tuple[TensorSpec, ...]:
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        shape = tuple(
            d.dim_param if d.dim_param else int(d.dim_value) for d in tensor_type.shape.dim
        )
        dtype = _ONNX_DTYPES.get(tensor_type.elem_type, str(tensor_type.elem_type))
        specs.append(TensorSpec(value.name, shape, dtype))
    return tuple(specs)


# The exporter's per-node INFO logs and these warnings say nothing about our graphs.
_NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx._internal.exporter._registration")
_NOISY_WARNINGS = (r".*axis name: .* will not be used", r".*LeafSpec.* is deprecated")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISY_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_graph(plan: GraphPlan, path: Path, *, opset: int = OPSET) -> GraphSpec:
    """Trace `plan` with the dynamo exporter into `path`; -> its interface read from the file."""
    import onnx

    plan.module.eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in plan.module.parameters())
    with _quiet_exporter():
        program = _export(plan, opset)
    program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    graph = onnx.load(str(path), load_external_data=False).graph
    # The exporter names dynamic axes after the Dims; check that every declared axis survived.
    spec = GraphSpec(path.name, _tensor_specs(graph.input), _tensor_specs(graph.output))
    for tensor in spec.inputs:
        for axis, label in plan.dynamic_axes.get(tensor.name, {}).items():
            if tensor.shape[axis] != label:
                raise RuntimeError(
                    f"{path.name}: input {tensor.name} axis {axis} exported as "
                    f"{tensor.shape[axis]!r}, expected dynamic {label!r}"
                )
    return spec


def _export(plan: GraphPlan, opset: int):
    return torch.onnx.export(
        plan.module,
        plan.args,
        dynamo=True,
        input_names=list(plan.input_names),
        output_names=list(plan.output_names),
        dynamic_shapes=_dynamic_shapes(plan),
        opset_version=opset,
        verbose=False,
    )


@torch.no_grad()
def export_onnx(
    model: nn.Module,
    out_dir: str | Path,
    *,
    config: dict,
    checkpoint_sha256: str | None = None,
    opset: int = OPSET,
) -> Manifest:
    """Export the four graphs of an `LPM` (fp32, eval mode, on the CPU) into `out_dir`.

    config: `{"preset": ..., "overrides": {...}}`, the checkpoint's config.json (it rebuilds the
    ModelConfig at load time). checkpoint_sha256: sha256 of the checkpoint's model.safetensors, or
    None for weights that come from no file. Writes one `<graph>.onnx` per graph and
    `manifest.json`; returns the manifest.
    """
    param = next(model.parameters())
    if param.dtype != torch.float32 or param.device.type != "cpu":
        raise ValueError(
            f"model: export needs fp32 on the CPU, got {param.dtype} on {param.device}"
        )
    cfg: ModelConfig = model.cfg
    require_exportable(cfg)  # before any file is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    specs: dict[str, GraphSpec] = {}
    for name in GRAPHS:
        log.info("exporting %s", name)
        specs[name] = export_graph(PLANS[name](model, cfg), out / f"{name}.onnx", opset=opset)
    manifest = Manifest(
        model=cfg.name,
        config=config,
        checkpoint_sha256=checkpoint_sha256,
        weights_sha256=weights_digest(model),
        opset=opset,
        torch=torch.__version__,
        graphs=specs,
    )
    manifest.write(out)
    return manifest
