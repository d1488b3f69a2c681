"""Generates the Python gRPC stubs of `proto/lpm_npc/v1/*.proto` into `lpm_npc/_proto/`.

Run `python -m lpm_npc.serve.protogen` after editing a .proto; the stubs are committed and
`tests/test_proto_fresh.py` regenerates them into a temporary directory and compares. protoc
writes `from lpm_npc.v1 import x_pb2`, which would need `proto/` on sys.path; we flatten the
output into one package and make those imports package-relative. This module needs
grpcio-tools (the `[test]` extra); nothing else in the package imports it.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE = "lpm_npc/v1"
STUB_DIR = REPO_ROOT / "lpm_npc" / "_proto"

_INIT = '''"""Generated gRPC stubs of proto/lpm_npc/v1 (do not edit; run `python -m lpm_npc.serve.protogen`).

Only `lpm_npc.serve` imports this package.
"""
'''

# `from lpm_npc.v1 import sessions_pb2 as ...` -> `from . import sessions_pb2 as ...`
_ABSOLUTE_IMPORT = re.compile(r"^from lpm_npc\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write the stubs (and `__init__.py`) into `out_dir`; return the files written."""
    from grpc_tools import protoc  # lazy: only stub generation needs grpcio-tools

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as raw:
        include = Path(protoc.__file__).parent / "_proto"
        sources = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={raw}",
                f"--pyi_out={raw}",
                f"--grpc_python_out={raw}",
                *sources,
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed with status {rc}")
        written = []
        for path in sorted((Path(raw) / PROTO_PACKAGE).iterdir()):
            text = _ABSOLUTE_IMPORT.sub("from . import ", path.read_text())
            target = out_dir / path.name
            target.write_text(text)
            written.append(target)
    init = out_dir / "__init__.py"
    init.write_text(_INIT)
    return [init, *written]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        for stale in STUB_DIR.glob("*_pb2*"):
            stale.unlink()
        STUB_DIR.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, STUB_DIR / path.name)
    sys.stdout.write(f"wrote {len(files)} files to {STUB_DIR}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
