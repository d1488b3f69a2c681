"""`--backend torch|onnxruntime`: the flags and the one constructor shared by every command.

`lpm-npc render`, `serve`, `demo` and `bench generator` call `add_backend_arguments(parser)` and
`make_generator(BackendChoice.from_args(args), checkpoint=..., ...)`, so the flags read the same
everywhere:

- `--backend {torch,onnxruntime}` (default torch): eager `engine.generator.StreamingGenerator`,
  or `onnx.generator.OnnxStreamingGenerator` (every per-chunk pass in onnxruntime; prepare and
  prompts stay in torch on the same CPU fp32 model).
- `--onnx-export DIR`: the graphs to run. Its manifest must have been exported from the same
  weights (`manifest.weights_sha256` == `weights_digest` of the loaded model), else a UserError
  says how to export again. Without it the checkpoint is exported once into the cache,
  `cache_root()/onnx/<first 12 hex of weights_digest>/` (`$LPM_NPC_CACHE`, else
  `$XDG_CACHE_HOME/lpm-npc`, else `~/.cache/lpm-npc`), and later runs reuse it. The export is
  written into a temporary sibling directory and renamed into place, so a killed export never
  leaves a half cache (a leftover `.tmp-*` sibling is garbage, never read).
- `--ort-threads N`: onnxruntime intra-op threads (0 = onnxruntime's default, one per core).
- `--ort-decoder {fp32,int8,fp16}`: which decoder graph; a missing `decoder.<variant>.onnx` is
  written next to the export's graphs first (`quantize.write_decoder_variant`, temp file + rename).

Refused with a `UserError` (one line from the CLI, no traceback): the onnxruntime backend without
onnxruntime installed ("pip install 'lpm-npc[onnx]'"), with `--compile` or bf16 (torch-only
options), and with `--device cuda` when this onnxruntime has no CUDA execution provider, or when
the sessions did not end up on it (never a silent CPU fallback). The torch model of the
onnxruntime backend always lives on the CPU in fp32; with --device cuda only the graphs run on
the GPU.

Nothing here imports onnx or onnxruntime until the onnxruntime backend is asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lpm_npc.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
DECODERS = ("fp32", "int8", "fp16")
CACHE_ENV = "LPM_NPC_CACHE"
ONNX_EXTRA = "pip install 'lpm-npc[onnx]'"


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The four backend flags (see the module docstring), in their own --help group."""
    group = parser.add_argument_group(
        "backend", "which runtime steps the chunks (docs/onnx.md); prepare stays in torch"
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="torch (eager, default) or onnxruntime (the exported graphs)",
    )
    group.add_argument(
        "--onnx-export",
        type=Path,
        default=None,
        metavar="DIR",
        help="graphs from `lpm-npc export onnx` of the same checkpoint (default: export the "
        f"checkpoint once into CACHE/onnx/<weights sha256[:12]>/ and reuse it; CACHE is "
        f"${CACHE_ENV}, else ~/.cache/lpm-npc)",
    )
    group.add_argument(
        "--ort-threads",
        type=int,
        default=0,
        metavar="N",
        help="onnxruntime intra-op threads (0 = onnxruntime's default, one per core)",
    )
    group.add_argument(
        "--ort-decoder",
        choices=DECODERS,
        default="fp32",
        help="decoder graph: fp32, or int8 / fp16 (written into the export dir if missing)",
    )


@dataclass(frozen=True)
class BackendChoice:
    """What the backend flags asked for."""

    backend: str = "torch"
    onnx_export: Path | None = None
    ort_threads: int = 0
    ort_decoder: str = "fp32"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BackendChoice:
        return cls(
            backend=getattr(args, "backend", "torch"),
            onnx_export=getattr(args, "onnx_export", None),
            ort_threads=getattr(args, "ort_threads", 0),
            ort_decoder=getattr(args, "ort_decoder", "fp32"),
        )

    def check(self, *, device: str = "cpu", compile: bool = False, dtype: str = "fp32") -> None:
        """Refuse impossible combinations before anything is loaded (UserError)."""
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.ort_decoder not in DECODERS:
            raise UserError(f"--ort-decoder must be one of {DECODERS}, got {self.ort_decoder!r}")
        if self.ort_threads < 0:
            raise UserError(f"--ort-threads must be >= 0, got {self.ort_threads}")
        if self.backend == "torch":
            return
        if compile:
            raise UserError(
                "--compile is torch.compile of the torch backend; --backend onnxruntime runs "
                "exported graphs (drop one of the two)"
            )
        if dtype != "fp32":
            raise UserError(
                f"--backend onnxruntime runs the fp32 graphs; --dtype {dtype} is torch-only"
            )
        _device_kind(device)


def _device_kind(device: str) -> str:
    """'cpu' or 'cuda' for the onnxruntime backend; other devices are refused."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "cuda:0"):
        return "cuda"
    raise UserError(f"--backend onnxruntime runs on --device cpu or cuda (device 0), not {name!r}")


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise UserError(f"--backend onnxruntime needs onnxruntime: {ONNX_EXTRA}") from error
    return onnxruntime


def providers_for(device: str) -> tuple[str, ...]:
    """Execution providers for --device: CUDA then CPU on cuda (refused when onnxruntime has no
    CUDA provider), CPU only on cpu."""
    from lpm_npc.onnx.runtime import CPU, CUDA

    available = _onnxruntime().get_available_providers()
    if _device_kind(device) == "cpu":
        return (CPU,)
    if CUDA not in available:
        raise UserError(
            f"--device cuda: this onnxruntime has no {CUDA} (available: {', '.join(available)}); "
            "install onnxruntime-gpu (the [gpu] extra, never together with onnxruntime) or use "
            "--device cpu"
        )
    return (CUDA, CPU)


def cache_root() -> Path:
    """$LPM_NPC_CACHE, else $XDG_CACHE_HOME/lpm-npc, else ~/.cache/lpm-npc."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lpm-npc"


def cache_dir_for(digest: str, root: Path | None = None) -> Path:
    """Where the export of the weights with `weights_digest` `digest` is cached."""
    return (root or cache_root()) / "onnx" / digest[:12]


def export_to_cache(model, *, config: dict, checkpoint_sha256: str | None, digest: str) -> Path:
    """The cached export of `model` (weights digest `digest`), exported now if missing.

    Written into a temporary sibling and renamed into place: a killed export leaves no cache
    entry, and of two racing exports the second finds the first's and discards its own.
    """
    from lpm_npc.onnx.manifest import MANIFEST_FILE

    target = cache_dir_for(digest)
    if (target / MANIFEST_FILE).is_file():
        log.info("onnx export cache hit: %s", target)
        return target
    from lpm_npc.onnx import export

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the checkpoint to the onnx cache %s (once; takes a while)", target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        try:  # onnx and onnxscript are imported by the exporter as it runs
            export.export_onnx(model, scratch, config=config, checkpoint_sha256=checkpoint_sha256)
        except ModuleNotFoundError as error:
            raise UserError(
                f"exporting for --backend onnxruntime needs {error.name}: {ONNX_EXTRA}"
            ) from error
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / MANIFEST_FILE).is_file():
                raise
            log.info("another process cached %s first; using it", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def ensure_decoder_variant(export_dir: Path, variant: str, model) -> None:
    """Write decoder.<variant>.onnx into `export_dir` if it is missing (temp copy + rename)."""
    from lpm_npc.onnx.manifest import MANIFEST_FILE, Manifest
    from lpm_npc.onnx.quantize import write_decoder_variant
    from lpm_npc.onnx.runtime import variant_file

    if variant == "fp32":
        return
    manifest = Manifest.read(export_dir)
    final = export_dir / variant_file(manifest.graphs["decoder"], variant)
    if final.is_file():
        return
    log.info("writing %s (once)", final)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=export_dir))
    try:
        for name in [MANIFEST_FILE, *(g.file for g in manifest.graphs.values())]:
            _link_or_copy(export_dir / name, scratch / name)
        try:
            written = write_decoder_variant(scratch, variant, model=model)
        except ModuleNotFoundError as error:
            raise UserError(f"--ort-decoder {variant} needs {error.name}: {ONNX_EXTRA}") from error
        os.replace(written, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _checkpoint_identity(checkpoint, random_weights: bool, preset: str):
    """(config dict, sha256 of model.safetensors or None) as the exporter records them."""
    import json

    from lpm_npc.digest import file_sha256
    from lpm_npc.engine.weights import (
        CONFIG_FILE,
        WEIGHTS_FILE,
        checkpoint_exists,
        default_checkpoint_dir,
    )

    directory = Path(checkpoint) if checkpoint is not None else default_checkpoint_dir()
    if random_weights or not checkpoint_exists(directory):
        return {"preset": preset, "overrides": {}}, None
    return json.loads((directory / CONFIG_FILE).read_text()), file_sha256(directory / WEIGHTS_FILE)


def _check_export(export_dir: Path, cfg, digest: str, source: str) -> None:
    """A UserError when `export_dir` holds no export or one of other weights or model."""
    from lpm_npc.onnx.manifest import Manifest

    try:
        manifest = Manifest.read(export_dir)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise UserError(f"--onnx-export {export_dir}: {error}") from None
    if manifest.model != cfg.name or manifest.weights_sha256 != digest:
        raise UserError(
            f"--onnx-export {export_dir} was exported from model {manifest.model} weights "
            f"{manifest.weights_sha256[:12]}, but {source} is model {cfg.name} weights "
            f"{digest[:12]}: export it again (lpm-npc export onnx --checkpoint ... --out "
            f"{export_dir}) or leave --onnx-export out to use the cache"
        )


def make_generator(
    choice: BackendChoice,
    *,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    random_weights: bool = False,
    allow_random: bool = False,
    preset: str = "tiny",
    dtype: str = "fp32",
    compile: bool = False,
):
    """The ChunkGenerator the flags ask for, over `load_lpm(checkpoint, ...)` (same arguments as
    `StreamingGenerator.from_checkpoint`; dtype "fp32" | "bf16"). See the module docstring."""
    import torch

    from lpm_npc.engine.generator import StreamingGenerator

    choice.check(device=device, compile=compile, dtype=dtype)
    if choice.backend == "torch":
        generator = StreamingGenerator.from_checkpoint(
            checkpoint,
            random_weights=random_weights,
            allow_random=allow_random,
            preset=preset,
            device=device,
            dtype=torch.bfloat16 if dtype == "bf16" else torch.float32,
        )
        if compile:
            generator.compile()
        return generator
    return _make_onnx_generator(choice, checkpoint, device, random_weights, allow_random, preset)


def _make_onnx_generator(choice, checkpoint, device, random_weights, allow_random, preset):
    from lpm_npc.engine.weights import load_lpm
    from lpm_npc.onnx.manifest import weights_digest
    from lpm_npc.onnx.runtime import CUDA, OrtOptions

    providers = providers_for(device)  # refuses a missing onnxruntime / CUDA provider early
    from lpm_npc.onnx.generator import OnnxStreamingGenerator

    cfg, model = load_lpm(
        checkpoint, random_weights=random_weights, allow_random=allow_random, preset=preset
    )
    digest = weights_digest(model)
    config, sha = _checkpoint_identity(checkpoint, random_weights, preset)
    if sha is None:
        source = f"random weights of preset {cfg.name}"
    else:
        source = f"checkpoint {checkpoint or 'embedded'}"
    if choice.onnx_export is not None:
        export_dir = Path(choice.onnx_export)
    else:
        export_dir = export_to_cache(model, config=config, checkpoint_sha256=sha, digest=digest)
    _check_export(export_dir, cfg, digest, source)
    ensure_decoder_variant(export_dir, choice.ort_decoder, model)
    options = OrtOptions(
        intra_op_threads=choice.ort_threads,
        providers=providers,
        decoder_variant="" if choice.ort_decoder == "fp32" else choice.ort_decoder,
    )
    generator = OnnxStreamingGenerator(cfg, model, export_dir, options=options, check_weights=False)
    if CUDA in providers and CUDA not in generator.providers:
        raise UserError(
            f"--device cuda: onnxruntime could not start {CUDA} (sessions run on "
            f"{', '.join(generator.providers)}); check the CUDA / cuDNN libraries onnxruntime-gpu "
            "needs, or use --device cpu"
        )
    generator.export_dir = export_dir
    log.info("onnxruntime backend: %s on %s", export_dir, ", ".join(generator.providers))
    return generator
