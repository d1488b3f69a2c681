"""`lpm-npc train` as a user runs it: a real SIGKILL + --resume, and a 2-process torchrun job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ARGS = [
    "--stage",
    "judge",
    "--model-override",
    "image_size=64",
    "--batch-size",
    "4",
    "--no-progress",
]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(out, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lpm_npc.cli", "train", "--out", str(out), *ARGS, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)


def test_help_and_bad_input():
    out = subprocess.run(
        [sys.executable, "-m", "lpm_npc.cli", "train", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--minutes-scale" in out.stdout
    bad = _train("/tmp/never", "--steps", "0")
    assert bad.returncode == 2 and "--steps must be > 0" in bad.stderr


def test_sigkill_then_resume_continues_to_the_same_step_count(tmp_path):
    cmd = [sys.executable, "-m", "lpm_npc.cli", "train", "--out", str(tmp_path), *ARGS]
    cmd += ["--steps", "400", "--checkpoint-every", "1"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "judge" / "ckpt"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            done = [p for p in ckpt.glob("step_*") if (p / "trainer.json").is_file()]
            if any(int(p.name[5:]) >= 3 for p in done):
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within the deadline")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = max(int(p.name[5:]) for p in ckpt.glob("step_*"))
    assert killed_at < 400
    resumed = _train(tmp_path, "--steps", str(killed_at + 2), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)["judge"]
    assert result["resumed_from_step"] == killed_at and result["steps"] == killed_at + 2


def test_torchrun_two_cpu_processes(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "lpm_npc.cli",
        "train",
        "--out",
        str(tmp_path),
        *ARGS,
        "--steps",
        "2",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["judge"]
    assert result["world_size"] == 2 and result["steps"] == 2 and result["samples"] == 2 * 2 * 4
    assert (tmp_path / "judge" / "final.safetensors").is_file()
