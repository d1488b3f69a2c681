"""The kernels lower for sm_90 (H100/H200) without a GPU: tensor-core instructions, no register
spills, no unvectorised 2-byte loads. The interpreter tests check the arithmetic; this checks
what only the compiler sees. Runs in a subprocess because the interpreter, switched on for the
other kernel tests, replaces `@triton.jit` process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json
from lpm_npc.kernels import aot
print(json.dumps([
    aot.compile_streaming_attention("lpm-17b", "fp16").as_dict(),
    aot.compile_ring_write("lpm-17b", "fp16").as_dict(),
]))
"""


def test_kernels_compile_for_sm90() -> None:
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    attention, ring = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{attention}\n{ring}")
    assert attention["tensor_core_ops"] > 0
    assert attention["local_memory_ops"] == 0 and attention["scalar_half_loads"] == 0
    assert attention["shared_bytes"] <= 227 * 1024  # fits one sm_90 SM
    assert ring["local_memory_ops"] == 0 and ring["scalar_half_loads"] == 0
