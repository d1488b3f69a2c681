"""onnxruntime sessions over an export directory: execution providers, options, one `Graph` each.

- `default_providers()`: the CUDA execution provider when onnxruntime offers it (an
  `onnxruntime-gpu` install on a machine with a GPU), the CPU provider otherwise; CPU is always
  last, so a node CUDA cannot run falls back to it.
- `OrtOptions`: the knobs that were measured (docs/onnx.md): graph optimisation level, intra-op
  threads, whether idle threads spin, and which decoder file to load (`decoder.onnx`, or a reduced-precision variant that
  `quantize.py` writes next to it).
- `Graph`: one `InferenceSession` with its manifest interface; `run(feeds)` checks the feed names
  against the manifest and returns every output by name.
- `load_graphs(export_dir, options)` -> (Manifest, {name: Graph}) for the four graphs.

This module knows the graphs' file names and interfaces only through `manifest.json`; it does not
build feeds (the generator does) and never imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpm_npc.onnx.manifest import GRAPHS, GraphSpec, Manifest

log = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def _ort():
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the onnxruntime backend needs onnxruntime (pip install 'lpm-npc[onnx]', or "
            "onnxruntime-gpu through the [gpu] extra; never both)"
        ) from error
    return onnxruntime


def default_providers() -> tuple[str, ...]:
    """CUDA first when available, CPU always (see the module docstring)."""
    available = _ort().get_available_providers()
    return (CUDA, CPU) if CUDA in available else (CPU,)


@dataclass(frozen=True)
class OrtOptions:
    """How the sessions are made (see docs/onnx.md for what each setting measured)."""

    graph_optimization: str = "all"  # onnxruntime graph optimisation level, OPTIMIZATION_LEVELS
    intra_op_threads: int = 0  # threads per op; 0 = onnxruntime's default (one per core)
    providers: tuple[str, ...] | None = None  # execution providers; None = default_providers()
    decoder_variant: str = ""  # "" = decoder.onnx; "int8" / "fp16" = decoder.<variant>.onnx
    allow_spinning: bool = False  # idle pool threads spin (onnxruntime's default) or sleep

    def __post_init__(self) -> None:
        if self.graph_optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {OPTIMIZATION_LEVELS}, "
                f"got {self.graph_optimization!r}"
            )
        if self.intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be >= 0, got {self.intra_op_threads}")
        if self.decoder_variant not in ("", "int8", "fp16"):
            raise ValueError(
                f"decoder_variant must be '', 'int8' or 'fp16', got {self.decoder_variant!r}"
            )

    def session_options(self):
        ort = _ort()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[self.graph_optimization]
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = 1  # the graphs are chains: parallelism is inside ops
        so.log_severity_level = 3  # warnings about unused initializers are noise here
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.allow_spinning else "0"
        )
        return so


class Graph:
    """One exported graph in an onnxruntime session."""

    def __init__(self, path: Path, spec: GraphSpec, options: OrtOptions) -> None:
        ort = _ort()
        providers = list(options.providers or default_providers())
        self.spec = spec
        self.session = ort.InferenceSession(
            str(path), sess_options=options.session_options(), providers=providers
        )
        names = [i.name for i in self.session.get_inputs()]
        if names != spec.input_names():
            raise ValueError(f"{path}: inputs {names} do not match the manifest's")
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = tuple(self.session.get_providers())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs by name; feeds must name exactly the graph's inputs."""
        expected = set(self.spec.input_names())
        if set(feeds) != expected:
            raise ValueError(
                f"{self.spec.file}: missing inputs {sorted(expected - set(feeds))}, "
                f"unknown inputs {sorted(set(feeds) - expected)}"
            )
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs))


def variant_file(spec: GraphSpec, variant: str) -> str:
    """decoder.onnx -> decoder.<variant>.onnx ('' keeps the file)."""
    if not variant:
        return spec.file
    stem = spec.file.removesuffix(".onnx")
    return f"{stem}.{variant}.onnx"


def load_graphs(
    export_dir: str | Path, options: OrtOptions = OrtOptions()
) -> tuple[Manifest, dict[str, Graph]]:
    """Read the manifest and open one session per graph (see the module docstring)."""
    directory = Path(export_dir)
    manifest = Manifest.read(directory)
    graphs = {}
    for name in GRAPHS:
        spec = manifest.graphs[name]
        file = variant_file(spec, options.decoder_variant) if name == "decoder" else spec.file
        if not (directory / file).is_file():
            raise FileNotFoundError(
                f"{directory / file} is missing (write it with lpm_npc.onnx.quantize)"
            )
        graphs[name] = Graph(directory / file, spec, options)
    log.info("onnxruntime graphs from %s on %s", directory, graphs["backbone"].providers)
    return manifest, graphs
