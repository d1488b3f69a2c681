"""The compiled kernels on a CUDA device (marker `gpu`, deselected by default), bf16 included.

Run in a process without the interpreter:
    TRITON_INTERPRET=0 python -m pytest -m gpu tests/test_kernels_gpu.py -q -s
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "0")  # before the CPU test module sets it to 1

import pytest  # noqa: E402
import torch  # noqa: E402
from lpm_npc.kernels import dispatch  # noqa: E402
from lpm_npc.kernels import streaming_attention as sa  # noqa: E402
from test_kernels_streaming_attention import (  # noqa: E402
    CASES,
    TOLERANCE,
    Case,
    _as_fp32,
    make_case,
    report,
)

pytestmark = pytest.mark.gpu

LPM_17B = Case("lpm-17b", 128, (32, 32), 1, 6, references=(8, 3), slots=(6, 2), heads=8)


def compiled_kernel():
    pytest.importorskip("triton")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if dispatch.interpreter_requested():
        pytest.skip("the interpreter is on in this process; run with TRITON_INTERPRET=0")
    from lpm_npc.kernels import streaming_attention_triton

    return streaming_attention_triton


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"]
)
@pytest.mark.parametrize("case", [*CASES, LPM_17B], ids=[c.name for c in [*CASES, LPM_17B]])
def test_compiled_kernel_matches_reference(case: Case, dtype: torch.dtype) -> None:
    kernel = compiled_kernel()
    q, k, v, keys = make_case(case, dtype, device="cuda")
    ref = sa.streaming_attention_reference(q.float(), k.float(), v.float(), _as_fp32(keys), 1)
    out = kernel.streaming_attention_triton(q, k, v, keys, 1)
    mx, mean = report(f"cuda kernel {case.name} {dtype}", out, ref)
    max_tol, mean_tol = TOLERANCE[dtype]
    assert mx <= max_tol * 4 and mean <= mean_tol, f"max {mx:.3e} mean {mean:.3e}"


def test_auto_dispatch_picks_the_kernel_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = compiled_kernel()
    calls: list[int] = []
    launcher = kernel.streaming_attention_triton

    def spy(*args, **kwargs):
        calls.append(1)
        return launcher(*args, **kwargs)

    monkeypatch.setattr(kernel, "streaming_attention_triton", spy)
    q, k, v, keys = make_case(CASES[0], torch.bfloat16, device="cuda")
    with dispatch.force_backend("auto"), torch.no_grad():
        sa.streaming_attention(q, k, v, keys, 0)
    assert calls == [1]
