"""`--backend onnxruntime` of render, serve, demo and bench generator (`lpm_npc.onnx.backend`).

One real export for the whole file: the module fixture builds the onnxruntime generator of a
`test-tiny` checkpoint (random non-zero weights, so every branch runs) with the cache pointed at a
temporary directory, counting `export_onnx` calls; every later test reuses that cache entry
(~35 s for the export on a loaded 2-core machine, a few seconds per test after it). One thread
for torch and onnxruntime throughout (two spinning threads fight any other load).
"""

import io
import json
import sys
import types
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from lpm_npc.cli import build_parser, main  # noqa: E402
from lpm_npc.config import SAMPLES_PER_FRAME, ModelConfig, ServeConfig  # noqa: E402
from lpm_npc.engine.weights import save_lpm  # noqa: E402
from lpm_npc.errors import UserError  # noqa: E402
from lpm_npc.model.lpm import LPM  # noqa: E402
from lpm_npc.onnx import export as export_module  # noqa: E402
from lpm_npc.onnx.backend import (  # noqa: E402
    BackendChoice,
    cache_dir_for,
    export_to_cache,
    make_generator,
)
from lpm_npc.onnx.bench import psnr  # noqa: E402
from lpm_npc.onnx.generator import OnnxStreamingGenerator  # noqa: E402
from lpm_npc.onnx.manifest import weights_digest  # noqa: E402

PRESET = "test-tiny"
ORT = BackendChoice("onnxruntime", ort_threads=1)
# render: PNG frames of the two backends (measured: >= 83 dB per frame, at most 1 level apart)
MIN_RENDER_PSNR_DB = 50.0
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _checkpoint(directory: Path, seed: int) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LPM(ModelConfig.from_name(PRESET)).eval().requires_grad_(False)
        for param in model.parameters():
            if not param.any():  # zero-initialised branches would make every frame alike
                param.copy_(torch.randn(param.shape) * 0.05)
    return save_lpm(model, directory, preset=PRESET, dtype=torch.float32)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """A namespace: root, checkpoint, cache, exports (export_onnx calls), generator."""
    root = tmp_path_factory.mktemp("backend")
    patch = pytest.MonkeyPatch()
    patch.setenv("LPM_NPC_CACHE", str(root / "cache"))
    exports = []
    real_export = export_module.export_onnx

    def counting_export(model, out_dir, **kwargs):
        exports.append(Path(out_dir))
        return real_export(model, out_dir, **kwargs)

    patch.setattr(export_module, "export_onnx", counting_export)
    torch.set_num_threads(1)
    checkpoint = _checkpoint(root / "ckpt", seed=0)
    try:
        generator = make_generator(ORT, checkpoint=checkpoint)
        yield types.SimpleNamespace(
            root=root,
            checkpoint=checkpoint,
            cache=root / "cache",
            exports=exports,
            generator=generator,
        )
    finally:
        patch.undo()


def test_the_cache_is_exported_once_and_reused(backend):
    generator = backend.generator
    assert isinstance(generator, OnnxStreamingGenerator)
    assert generator.providers == ("CPUExecutionProvider",)
    digest = weights_digest(generator.model)
    assert generator.export_dir == cache_dir_for(digest) == backend.cache / "onnx" / digest[:12]
    assert len(backend.exports) == 1
    assert backend.exports[0].parent == backend.cache / "onnx"  # a temp sibling, renamed after
    assert sorted(p.name for p in (backend.cache / "onnx").iterdir()) == [digest[:12]]
    manifest = generator.export_dir / "manifest.json"
    assert json.loads(manifest.read_text())["weights_sha256"] == digest
    mtimes = {p.name: p.stat().st_mtime_ns for p in generator.export_dir.iterdir()}
    again = make_generator(ORT, checkpoint=backend.checkpoint)
    assert again.export_dir == generator.export_dir
    assert len(backend.exports) == 1  # reused, not exported again
    assert {p.name: p.stat().st_mtime_ns for p in again.export_dir.iterdir()} == mtimes


def test_a_killed_export_leaves_no_cache_entry(backend, monkeypatch):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = LPM(ModelConfig.from_name(PRESET)).eval()
    digest = weights_digest(model)

    def dies_half_way(model, out_dir, **kwargs):
        (Path(out_dir) / "audio.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "export_onnx", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        export_to_cache(model, config={"preset": PRESET}, checkpoint_sha256=None, digest=digest)
    names = sorted(p.name for p in (backend.cache / "onnx").iterdir())
    assert names == [backend.generator.export_dir.name]  # no entry, no temp dir left


def test_an_export_of_other_weights_is_refused(backend, tmp_path, capsys):
    other = _checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(UserError, match="exported from model test-tiny weights"):
        make_generator(
            BackendChoice("onnxruntime", onnx_export=backend.generator.export_dir),
            checkpoint=other,
        )
    with pytest.raises(UserError, match="no ONNX export"):
        make_generator(BackendChoice("onnxruntime", onnx_export=tmp_path), checkpoint=other)
    code = main(
        [
            "render",
            "--character",
            str(SAMPLES / "characters" / "mira"),
            "--speak",
            str(SAMPLES / "audio" / "tts_sentence.wav"),
            "--seconds",
            "0.5",
            "--checkpoint",
            str(other),
            "--out",
            str(tmp_path / "x.mp4"),
            "--backend",
            "onnxruntime",
            "--onnx-export",
            str(backend.generator.export_dir),
        ]
    )
    assert code == 2
    assert "export it again" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_render_with_onnxruntime_matches_torch(backend, tmp_path, capsys):
    from PIL import Image

    from lpm_npc.synth.video_io import read_mp4

    frames = {}
    for name in ("torch", "onnxruntime"):
        out = tmp_path / name
        args = [
            "render",
            "--character",
            str(SAMPLES / "characters" / "mira"),
            "--speak",
            str(SAMPLES / "audio" / "tts_sentence.wav"),
            "--listen",
            str(SAMPLES / "audio" / "babble_listen.wav"),
            "--seconds",
            "1.0",
            "--checkpoint",
            str(backend.checkpoint),
            "--seed",
            "3",
            "--out",
            str(out / "render.mp4"),
            "--frames",
            str(out / "frames"),
            "--json",
            str(out / "stats.json"),
            "--backend",
            name,
            "--ort-threads",
            "1",
        ]
        assert main(args) == 0
        video, fps = read_mp4(out / "render.mp4")
        pngs = sorted((out / "frames").glob("*.png"))
        assert len(video) == len(pngs) == 24 and fps == 24
        assert json.loads((out / "stats.json").read_text())["backend"] == name
        frames[name] = np.stack([np.asarray(Image.open(p)) for p in pngs])
    assert len(backend.exports) == 1  # the cache from the fixture
    a, b = frames["torch"], frames["onnxruntime"]
    assert a.shape == b.shape == (24, 32, 32, 3)
    assert a.std() > 1.0  # frames that vary, so agreement means something
    psnrs = [psnr(x, y) for x, y in zip(a, b)]
    assert min(psnrs) >= MIN_RENDER_PSNR_DB, psnrs
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 8


def test_a_missing_decoder_variant_is_written_into_the_export(backend):
    from lpm_npc.engine.protocol import ChunkAudio

    export_dir = backend.generator.export_dir
    assert not (export_dir / "decoder.fp16.onnx").exists()
    choice = BackendChoice("onnxruntime", ort_threads=1, ort_decoder="fp16")
    generator = make_generator(choice, checkpoint=backend.checkpoint)
    assert (export_dir / "decoder.fp16.onnx").is_file()
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".")]  # temp dir removed
    assert generator.graphs["decoder"].session._model_path.endswith("decoder.fp16.onnx")
    assert len(backend.exports) == 1
    images = np.zeros((1, 32, 32, 3), np.uint8)
    state = generator.open(generator.prepare(images, [("global", "")]))
    silence = np.zeros(generator.cfg.samples_per_chunk, np.float32)
    (chunk,) = generator.step([state], [ChunkAudio(0, silence, silence)])
    assert chunk.frames.shape[1:] == (32, 32, 3)


def test_bench_generator_reports_onnxruntime_vs_torch(backend):
    stdout = io.StringIO()
    args = [
        "bench",
        "generator",
        "--checkpoint",
        str(backend.checkpoint),
        "--seconds",
        "1.0",
        "--threads",
        "1",
        "--backend",
        "onnxruntime",
        "--ort-threads",
        "1",
        "--json",
    ]
    with redirect_stdout(stdout):
        assert main(args) == 0
    data = json.loads(stdout.getvalue())
    assert data["backend"] == "onnxruntime" and data["preset"] == PRESET
    assert data["onnxruntime_vs_torch"] > 0
    assert data["psnr_vs_torch_db"] >= MIN_RENDER_PSNR_DB
    assert data["providers"] == ["CPUExecutionProvider"]
    assert data["export_dir"] == str(backend.generator.export_dir)
    assert data["chunks"] == 6 and data["torch_chunk_ms_mean"] > 0 and data["flops_per_chunk"] > 0
    assert len(backend.exports) == 1


def test_torch_only_options_and_missing_pieces_are_refused(capsys, monkeypatch):
    for extra in (["--compile"], ["--dtype", "bf16"]):
        args = ["bench", "generator", "--preset", PRESET, "--backend", "onnxruntime", *extra]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "--backend onnxruntime" in err and "Traceback" not in err
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UserError, match="no CUDAExecutionProvider"):
            make_generator(ORT, random_weights=True, preset=PRESET, device="cuda")
    with pytest.raises(UserError, match="cpu or cuda"):
        make_generator(ORT, random_weights=True, preset=PRESET, device="mps")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(UserError, match=r"pip install 'lpm-npc\[onnx\]'"):
        make_generator(ORT, random_weights=True, preset=PRESET)


def test_every_command_takes_the_same_backend_flags():
    parser = build_parser()
    for argv in (["render"], ["serve"], ["demo"], ["bench", "generator"]):
        required = (
            ["--character", "c", "--speak", "s", "--out", "o.mp4"] if argv == ["render"] else []
        )
        flags = ["--backend", "onnxruntime", "--onnx-export", "d", "--ort-threads", "2"]
        args = parser.parse_args([*argv, *required, *flags, "--ort-decoder", "int8"])
        choice = BackendChoice.from_args(args)
        assert choice == BackendChoice("onnxruntime", Path("d"), 2, "int8"), argv
        assert BackendChoice.from_args(parser.parse_args([*argv, *required])) == BackendChoice()


def test_a_daemon_serves_sessions_through_the_onnx_generator(backend, tmp_path):
    from lpm_npc.serve.capacity import measure_capacity
    from lpm_npc.serve.client import LpmClient, stream_conversation
    from lpm_npc.serve.server import ServerThread
    from lpm_npc.serve.testing import sheet_images

    generator = backend.generator
    report = measure_capacity(generator, 2, headroom=1.0, repeats=1)
    assert 1 <= len(report.step_s) <= 2 and all(s > 0 for s in report.step_s)
    patient = ServeConfig(degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6)
    t = np.arange(8000) / 16000
    speech = (0.4 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    with (
        ServerThread(generator=generator, store_dir=str(tmp_path), config=patient) as running,
        LpmClient(running.address, timeout=60) as client,
    ):
        client.register_images("ann", sheet_images(seed=1))
        session = client.open_session("ann", seed=2)
        result = stream_conversation(client, session, speech, speech, fast=True, timeout=60)
        client.close_session(session.session_id)
    assert len(result.frames) >= len(speech) // SAMPLES_PER_FRAME
    seqs = [f.seq for f in result.frames]
    assert seqs == list(range(len(seqs)))
    images = [f.image for f in result.frames]
    assert all(i is not None and i.shape == (32, 32, 3) for i in images)
    assert np.stack(images).std() > 1.0
