"""The manifest of an ONNX export: which graphs, their named inputs and outputs, and the weights.

`manifest.json` sits beside the `.onnx` files::

    {"format": 1, "model": "tiny", "config": {"preset": "tiny", "overrides": {...}},
     "checkpoint_sha256": "<sha256 of model.safetensors>" | null,
     "weights_sha256": "<digest of the fp32 state dict>", "opset": 18, "torch": "2.x",
     "graphs": {"backbone": {"file": "backbone.onnx", "inputs": [{"name": ..., "shape": [...],
                "dtype": "float32"}, ...], "outputs": [...]}, ...}}

A shape entry is an int (fixed) or a string (a dynamic axis: "batch", "reference_tokens",
"history_tokens"). Shapes and dtypes are read back from the written graphs, never restated by
hand. `weights_sha256` (`weights_digest`) identifies the weights independently of the file they
came from (random test weights have no file), so a runtime can check that the torch model it uses
for the once-per-character work (references, prompts) is the one the graphs were exported from.

This module only reads and writes JSON and hashes; it does not export or run graphs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
GRAPHS: tuple[str, ...] = ("audio", "backbone", "refiner", "decoder")


@dataclass(frozen=True)
class TensorSpec:
    """One named graph input or output."""

    name: str
    shape: tuple[int | str, ...]  # ints are fixed sizes, strings name dynamic axes
    dtype: str  # numpy dtype name: float32, int64, bool, ...


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph file and its interface."""

    file: str  # file name inside the export directory
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` holds (see the module docstring)."""

    model: str  # ModelConfig.name
    config: dict  # {"preset": ..., "overrides": {...}}: rebuilds the ModelConfig
    checkpoint_sha256: str | None  # sha256 of the checkpoint's model.safetensors; None = random
    weights_sha256: str  # `weights_digest` of the exported model
    opset: int  # ONNX default-domain opset of every graph
    torch: str  # torch version that exported
    graphs: dict[str, GraphSpec]  # keys: GRAPHS
    format: int = FORMAT_VERSION

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        data = asdict(self)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        """Parse `directory/manifest.json`; a missing file or graph raises with the path."""
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX export at {directory} (missing {MANIFEST_FILE})")
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT_VERSION}")
        missing = sorted(set(GRAPHS) - set(data.get("graphs", {})))
        if missing:
            raise ValueError(f"{path}: graphs {missing} are missing")

        def tensors(items: list[dict]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in items)

        graphs = {
            name: GraphSpec(g["file"], tensors(g["inputs"]), tensors(g["outputs"]))
            for name, g in data["graphs"].items()
        }
        for name, graph in graphs.items():
            if not (Path(directory) / graph.file).is_file():
                raise FileNotFoundError(f"{path}: graph {name!r} file {graph.file} is missing")
        return cls(
            model=data["model"],
            config=data["config"],
            checkpoint_sha256=data["checkpoint_sha256"],
            weights_sha256=data["weights_sha256"],
            opset=data["opset"],
            torch=data["torch"],
            graphs=graphs,
        )


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over every state-dict entry (name, shape, fp32 bytes), in name order.

    Floating tensors are hashed as float32, so a model loaded from an fp16 checkpoint into fp32
    parameters hashes the same on every platform.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()
