"""Reference sheets: rendering, atomic writing, loading, in-memory validation and bad input."""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpm_npc.config import SheetLimits
from lpm_npc.synth.character import CharacterSpec
from lpm_npc.synth.motion import EXPRESSIONS
from lpm_npc.synth.sheet import (
    MANIFEST,
    ReferenceImage,
    ReferenceSheet,
    SheetError,
    load_sheet,
    render_sheet,
    sheet_from_files,
    sheet_to_array,
    write_sheet,
)


@pytest.fixture(scope="module")
def rendered() -> ReferenceSheet:
    return render_sheet(CharacterSpec.from_seed(11), 64, name="test")


def _png(size=(64, 64), colour=(200, 80, 40), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else None).save(buf, format="PNG")
    return buf.getvalue()


def _manifest(*images, name="kit", extra="") -> str:
    lines = [f'name = "{name}"', extra]
    for file, role, label in images:
        lines += ["[[image]]", f'file = "{file}"', f'role = "{role}"', f'label = "{label}"']
    return "\n".join(lines) + "\n"


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "d"
        for p in sorted(root.rglob("*"))
    }


def test_render_sheet_has_all_roles(rendered):
    roles = rendered.roles
    assert ("global", "scene") in roles
    assert {label for role, label in roles if role == "view"} == {"front", "left", "right", "back"}
    expressions = [label for role, label in roles if role == "expression"]
    assert len(expressions) >= 4 and set(expressions) <= set(EXPRESSIONS)
    for im in rendered.images:
        assert im.image.shape == (64, 64, 3) and im.image.dtype == np.uint8
        assert not im.image.flags.writeable
    pixels = {im.image.tobytes() for im in rendered.images}
    assert len(pixels) == len(rendered.images)  # every reference is a different picture


def test_write_then_load_roundtrip(tmp_path, rendered):
    path = write_sheet(rendered, tmp_path / "kit")
    loaded = load_sheet(path)
    assert loaded.name == "test" and loaded.seed == 11
    assert loaded.roles == rendered.roles
    for a, b in zip(loaded.images, rendered.images):
        assert np.array_equal(a.image, b.image)
    files = {p.name: p.read_bytes() for p in path.iterdir() if p.name != MANIFEST}
    again = sheet_from_files((path / MANIFEST).read_bytes(), files)
    assert again.roles == loaded.roles
    # Rewriting replaces the folder atomically and leaves no temporary folders behind.
    smaller = ReferenceSheet("small", rendered.images[1:2], None)
    write_sheet(smaller, path)
    assert load_sheet(path).roles == [("view", "front")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kit"]


def test_sheet_to_array_resizes_and_pads(rendered):
    arr, roles = sheet_to_array(rendered, 32)
    assert arr.shape == (len(rendered.images), 32, 32, 3) and arr.dtype == np.uint8
    assert roles == rendered.roles
    wide = np.zeros((60, 120, 3), np.uint8)
    wide[:, :, 0] = 255
    sheet = ReferenceSheet("wide", (ReferenceImage("view", "front", wide),))
    out, _ = sheet_to_array(sheet, 64)
    assert out.shape == (1, 64, 64, 3)
    assert out[0, 32, 32, 0] > 250  # content kept, padded with its border colour


def test_non_square_and_non_rgb_images_load(tmp_path):
    (tmp_path / "f.png").write_bytes(_png((80, 120), mode="RGBA"))
    (tmp_path / "g.png").write_bytes(_png((100, 70), mode="L"))
    (tmp_path / MANIFEST).write_text(
        _manifest(("f.png", "view", "front"), ("g.png", "global", "scene"))
    )
    sheet = load_sheet(tmp_path)
    assert sheet.images[0].image.shape == (120, 80, 3)
    assert sheet.images[1].image.shape == (70, 100, 3)


def _valid(root: Path) -> None:
    (root / "front.png").write_bytes(_png())
    (root / "smile.png").write_bytes(_png(colour=(10, 200, 10)))
    (root / MANIFEST).write_text(
        _manifest(("front.png", "view", "front"), ("smile.png", "expression", "smile"))
    )


def _replace_manifest(text):
    def mutate(root: Path) -> None:
        (root / MANIFEST).write_text(text)

    return mutate


def _escape_symlink(root: Path) -> None:
    outside = root.parent / "outside.png"
    outside.write_bytes(_png())
    os.symlink(outside, root / "link.png")
    (root / MANIFEST).write_text(_manifest(("link.png", "view", "front")))


BAD_CASES = {
    "missing manifest": (lambda root: (root / MANIFEST).unlink(), "sheet.toml", None),
    "bad toml": (_replace_manifest('name = "x"\n[[image]\nfile='), "toml", None),
    "missing name": (_replace_manifest(_manifest(("front.png", "view", "front"), name="")), "name", None),
    "no front view": (_replace_manifest(_manifest(("smile.png", "expression", "smile"))), "image", None),
    "unknown role": (_replace_manifest(_manifest(("front.png", "view", "front"), ("smile.png", "pose", "x"))), "image[1].role", None),
    "unknown view label": (_replace_manifest(_manifest(("front.png", "view", "top"))), "image[0].label", None),
    "unknown expression": (_replace_manifest(_manifest(("front.png", "view", "front"), ("smile.png", "expression", "bored"))), "image[1].label", None),
    "duplicate file": (_replace_manifest(_manifest(("front.png", "view", "front"), ("front.png", "view", "left"))), "image[1].file", None),
    "duplicate role": (_replace_manifest(_manifest(("front.png", "view", "front"), ("smile.png", "view", "front"))), "image[1].label", None),
    "parent escape": (_replace_manifest(_manifest(("../front.png", "view", "front"))), "image[0].file", None),
    "absolute path": (_replace_manifest(_manifest(("/etc/passwd", "view", "front"))), "image[0].file", None),
    "symlink escape": (_escape_symlink, "file", None),
    "missing file": (_replace_manifest(_manifest(("nope.png", "view", "front"))), "file", None),
    "corrupt image": (lambda root: (root / "front.png").write_bytes(_png()[:40]), "image", None),
    "not an image": (lambda root: (root / "front.png").write_text("hello"), "image", None),
    "too small": (lambda root: (root / "front.png").write_bytes(_png((32, 80))), "width", None),
    "too large": (lambda root: None, "width", SheetLimits(max_side=60)),
    "file too big": (lambda root: None, "file size", SheetLimits(max_file_bytes=50)),
    "too many images": (lambda root: None, "image", SheetLimits(max_images=1)),
    "sheet too big": (lambda root: None, "total size", SheetLimits(max_total_bytes=300)),
    "unknown key": (_replace_manifest(_manifest(("front.png", "view", "front"), extra="colour = 3")), "colour", None),
    "bad seed": (_replace_manifest(_manifest(("front.png", "view", "front"), extra='seed = "x"')), "seed", None),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_sheet_is_rejected_and_left_untouched(tmp_path, case):
    mutate, field, limits = BAD_CASES[case]
    root = tmp_path / "sheet"
    root.mkdir()
    _valid(root)
    mutate(root)
    before = _snapshot(tmp_path)
    with pytest.raises(SheetError) as info:
        load_sheet(root, limits or SheetLimits())
    error = info.value
    assert isinstance(error, ValueError)
    assert field in error.field, (error.field, str(error))
    assert error.file and error.file in str(error) and error.field in str(error)
    assert _snapshot(tmp_path) == before


def test_in_memory_sheet_uses_the_same_rules():
    files = {"front.png": _png(), "smile.png": _png()}
    good = _manifest(("front.png", "view", "front"), ("smile.png", "expression", "smile"))
    assert sheet_from_files(good.encode(), files).roles == [
        ("view", "front"),
        ("expression", "smile"),
    ]
    with pytest.raises(SheetError, match="not uploaded"):
        sheet_from_files(good.encode(), {"front.png": _png()})
    with pytest.raises(SheetError) as info:
        sheet_from_files(_manifest(("../front.png", "view", "front")).encode(), files)
    assert info.value.field == "image[0].file"
    with pytest.raises(SheetError) as info:
        sheet_from_files(b"\xff\xfe not utf8", files)
    assert info.value.field == "toml"
    with pytest.raises(SheetError) as info:
        sheet_from_files(good.encode(), {**files, "front.png": b"garbage"})
    assert info.value.field == "image" and info.value.file == "front.png"


def test_missing_folder_is_a_sheet_error(tmp_path):
    with pytest.raises(SheetError) as info:
        load_sheet(tmp_path / "absent")
    assert info.value.field == "path"
