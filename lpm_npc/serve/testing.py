"""Small real reference sheets for exercising the daemon fast, and a daemon in a subprocess.

`lpm-npc bench serve` and the tests register the sheets; they go through the real sheet loader,
only small. (A small real generator is `StreamingGenerator.from_checkpoint(random_weights=True,
preset="test-tiny")`.) `spawn_daemon` runs `lpm-npc serve` in its own process, for the fault
tests that kill it and the soak benchmark.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def sheet_images(seed: int = 0, size: int = 64) -> list[tuple[str, str, str, bytes]]:
    """(role, label, filename, PNG bytes) of a small random three-image sheet."""
    rng = np.random.default_rng(seed)
    roles = [
        ("global", "", "scene.png"),
        ("view", "front", "front.png"),
        ("expression", "smile", "smile.png"),
    ]
    return [
        (role, label, name, png_bytes(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        for role, label, name in roles
    ]


def spawn_daemon(
    store: Path,
    *extra: str,
    preset: str = "test-tiny",
    measure_capacity: bool = False,
    start_timeout_s: float = 120.0,
) -> tuple[subprocess.Popen, str]:
    """`lpm-npc serve --port 0 --random-weights` on `store` in a subprocess (one torch thread);
    returns (process, "127.0.0.1:PORT") once it printed `listening on`. Without
    `measure_capacity` it admits up to max_sessions (a loaded test machine must not decide how
    many sessions a test may open). Raises RuntimeError (after killing it) if it exits or stays
    silent for `start_timeout_s`."""
    command = [
        sys.executable,
        "-m",
        "lpm_npc.cli",
        "serve",
        "--port",
        "0",
        "--store",
        str(store),
        "--random-weights",
        "--preset",
        preset,
        "--threads",
        "1",
        *([] if measure_capacity else ["--no-measure-capacity"]),
        *extra,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("listening on "):
            return process, line.split()[-1]
        if not line and process.poll() is not None:
            break
    process.kill()
    process.wait()
    raise RuntimeError(f"lpm-npc serve did not start: {' '.join(command)}")
