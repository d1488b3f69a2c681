"""`lpm-npc client ...` against a real in-process daemon, and `lpm-npc demo` (slow)."""

import json
from pathlib import Path

import numpy as np
import pytest

from lpm_npc.cli import main as cli_main
from lpm_npc.config import SAMPLES_PER_FRAME, ServeConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images
from lpm_npc.synth.audio_io import write_wav
from lpm_npc.synth.sheet import ReferenceImage, ReferenceSheet, write_sheet
from lpm_npc.synth.video_io import read_mp4

PATIENT = ServeConfig(degrade_lag_chunks=1e6, recover_lag_chunks=1e6, shed_lag_chunks=1e6)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with ServerThread(
        generator=StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny"),
        store_dir=str(store),
        config=PATIENT,
    ) as running:
        yield running


def _sheet_dir(tmp_path: Path) -> Path:
    import io

    from PIL import Image

    images = [
        ReferenceImage(
            role, label or "scene", np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        )
        for role, label, _, data in sheet_images(seed=3)
    ]
    return write_sheet(ReferenceSheet("Mira", tuple(images)), tmp_path / "mira")


@pytest.mark.parametrize("delivery", ["inline", "shm"])
def test_register_list_stream(server, tmp_path: Path, capsys, delivery: str) -> None:
    address = ["client", "--address", server.address]
    assert cli_main([*address, "register", str(_sheet_dir(tmp_path)), "--json"]) == 0
    registered = json.loads(capsys.readouterr().out)
    assert registered["id"] == "Mira" and len(registered["version"]) == 64
    assert cli_main([*address, "list", "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == ["Mira"]
    t = np.arange(12_000) / 16_000
    write_wav(tmp_path / "speak.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
    write_wav(tmp_path / "listen.wav", np.zeros(8_000, np.float32))
    out = tmp_path / "out"
    code = cli_main(
        [
            *address,
            "stream",
            "--character",
            "Mira",
            "--speak",
            str(tmp_path / "speak.wav"),
            "--listen",
            str(tmp_path / "listen.wav"),
            "--delivery",
            delivery,
            "--prompt",
            "cheerful",
            "--fast",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    listing = json.loads((out / "frames.json").read_text())
    frames = listing["frames"]
    assert summary["frames"] == len(frames) >= 12_000 // SAMPLES_PER_FRAME
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert all(b["pts_ms"] > a["pts_ms"] for a, b in zip(frames, frames[1:]))
    assert [p["event"] for p in listing["playback"]] == ["started", "finished"]
    video, fps = read_mp4(out / "video.mp4")
    assert fps == 24 and len(video) >= len(frames) and video.shape[1:] == (32, 32, 3)


def test_stream_unknown_character_is_a_clean_error(server, tmp_path: Path, capsys) -> None:
    write_wav(tmp_path / "s.wav", np.zeros(1600, np.float32))
    code = cli_main(
        [
            "client",
            "--address",
            server.address,
            "stream",
            "--character",
            "ghost",
            "--speak",
            str(tmp_path / "s.wav"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "NOT_FOUND" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_video_and_contact_sheet(tmp_path: Path, capsys) -> None:
    assert cli_main(["demo", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (tmp_path / "demo.mp4").stat().st_size > 0 and (tmp_path / "contact_sheet.png").exists()
    assert any(p["interrupted"] for p in summary["playback"])
    assert summary["wall_seconds"] < 180
    assert summary["truth_vs_generated"] == str(tmp_path / "truth_vs_generated.png")
    assert (tmp_path / "truth_vs_generated.png").exists()
    kinds = [m["kind"] for m in summary["truth_moments"]]
    assert all(kinds.count(k) == 2 for k in ("speaking", "listening", "idle"))


def test_bench_serve_reports_every_session_count(capsys) -> None:
    args = ["bench", "serve", "--sessions", "1,2", "--seconds", "0.5"]
    assert cli_main([*args, "--preset", "test-tiny", "--random-weights", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "test-tiny"
    assert [run["sessions"] for run in report["runs"]] == [1, 2]
    for run in report["runs"]:
        n = run["sessions"]
        assert len(run["per_session_fps"]) == n and all(f > 0 for f in run["per_session_fps"])
        assert run["latency_ms_p95"] >= run["latency_ms_p50"] > 0
        assert run["dropped_frames"] >= 0 and run["rss_per_session_mb"] is not None
        assert run["batched_vs_sequential"] > 0 and run["shm_vs_inline_delivery"] > 0
        assert run["phases"]["throughput_sequential"]["mean_batch"] == 1.0
    two = report["runs"][1]["phases"]["throughput_batched"]
    assert two["mean_batch"] > 1.0  # two sessions really shared steps
    with pytest.raises(SystemExit):
        cli_main(["bench", "serve", "--sessions", "1,x"])
