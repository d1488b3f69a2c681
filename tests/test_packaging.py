"""The package installs as one distribution with kernels under lpm_npc.kernels, and the tree is ruff clean."""

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_is_a_subpackage_with_its_modules():
    module = importlib.import_module("lpm_npc.kernels")
    assert module.__name__ == "lpm_npc.kernels"
    assert Path(module.__file__).parent.name == "kernels"
    # An empty package would pass the lines above: every kernel module must be there and import.
    names = {m.name for m in pkgutil.iter_modules(module.__path__)}
    expected = {p.stem for p in (ROOT / "kernels").glob("*.py")} - {"__init__"}
    assert {"dispatch", "streaming_attention", "ring_write"} <= names
    assert names == expected
    for name in sorted(names):
        importlib.import_module(f"lpm_npc.kernels.{name}")


def test_no_top_level_kernels_module(tmp_path):
    # `kernels` on PyPI is another project: the install must not claim that name.
    probe = "import importlib.util; print(importlib.util.find_spec('kernels'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "None"


def test_cli_help_works():
    out = subprocess.run(
        [sys.executable, "-m", "lpm_npc.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "lpm-npc" in out.stdout


def test_every_subcommand_has_help():
    from lpm_npc.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert sub.choices, "no subcommands registered"
    for name, subparser in sub.choices.items():
        text = subparser.format_help()
        assert name in text


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_lint_and_format_clean():
    lint = subprocess.run(["ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(["ruff", "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
