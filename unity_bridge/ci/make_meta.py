"""Writes the Unity .meta file of every file and folder of the package that lacks one.

Unity needs a .meta beside every asset of a package (an immutable package cannot get them on
import), and the GUIDs in them are what scenes reference. GUIDs here are derived from the path
(md5 of "com.lpmnpc.bridge/<path>"), so they are stable and unique. Folders ending in "~" are
ignored by Unity (the sample's contents still get metas: they are copied into Assets on import).

    python3 unity_bridge/ci/make_meta.py          # create missing metas
    python3 unity_bridge/ci/make_meta.py --check  # list missing ones, exit 1 if any
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
IMPORTERS = {
    ".cs": "MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n"
    "  executionOrder: 0\n  icon: {instanceID: 0}\n",
    ".asmdef": "AssemblyDefinitionImporter:\n  externalObjects: {}\n",
    ".md": "TextScriptImporter:\n  externalObjects: {}\n",
    ".mat": "NativeFormatImporter:\n  externalObjects: {}\n  mainObjectFileID: 2100000\n",
    ".unity": "DefaultImporter:\n  externalObjects: {}\n",
}
DEFAULT = "DefaultImporter:\n  externalObjects: {}\n"


def guid_for(relative: str) -> str:
    return hashlib.md5(f"com.lpmnpc.bridge/{relative}".encode()).hexdigest()


def wanted() -> list[Path]:
    """Every path of the package that Unity imports (and so needs a meta)."""
    out = []
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        if path.suffix == ".meta" or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_dir() and path.name.endswith("~"):
            continue  # Unity ignores the folder itself
        out.append(path)
    return out


def meta_text(path: Path) -> str:
    rel = path.relative_to(PACKAGE).as_posix()
    head = f"fileFormatVersion: 2\nguid: {guid_for(rel)}\n"
    if path.is_dir():
        return head + "folderAsset: yes\n" + DEFAULT + TAIL
    if path.name == "package.json":
        return head + "PackageManifestImporter:\n  externalObjects: {}\n" + TAIL
    return head + IMPORTERS.get(path.suffix, DEFAULT) + TAIL


def main(argv: list[str]) -> int:
    missing = [p for p in wanted() if not Path(str(p) + ".meta").exists()]
    if "--check" in argv:
        for p in missing:
            print(f"missing meta: {p.relative_to(PACKAGE)}")
        return 1 if missing else 0
    for p in missing:
        Path(str(p) + ".meta").write_text(meta_text(p))
        print(f"wrote {p.relative_to(PACKAGE)}.meta")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
