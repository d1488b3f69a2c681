"""Reference sheets: the images a designer hands in to define a character, and their validation.

A sheet is a folder with `sheet.toml` and images::

    name = "mira"
    seed = 7            # optional: the procedural character it was rendered from
    [[image]]
    file = "front.png"
    role = "view"       # global | view | expression
    label = "front"     # view: front|left|right|back; expression: one of EXPRESSIONS; global: scene

`load_sheet(dir)` and `sheet_from_files(manifest, files)` (the daemon's in-memory path) apply the same
validation and answer bad input with `SheetError`, naming the file and field and the allowed range;
they only read, never modify, what they are given. `write_sheet` writes atomically (temp folder, then
rename). `render_sheet` renders a complete sheet for a procedural character. This module does not
encode references for the model (the engine does).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import tomllib
from PIL import Image

from lpm_npc.config import SheetLimits
from lpm_npc.synth.character import CharacterSpec
from lpm_npc.vocab import ROLE_LABELS as ROLES  # role -> allowed labels

logger = logging.getLogger(__name__)

MANIFEST = "sheet.toml"
MAX_MANIFEST_BYTES = 64 * 1024  # a manifest is a few lines; anything larger is not a manifest
MAX_NAME_CHARS = 64
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
# Yaw of each view in a rendered sheet (degrees; + = turned to the viewer's right).
VIEW_YAW: dict[str, float] = {"front": 0.0, "left": -70.0, "right": 70.0}
SHEET_EXPRESSIONS: tuple[str, ...] = ("neutral", "smile", "sad", "angry", "surprised")
GLOBAL_ZOOM = 0.5  # the global shot shows the character small in its scene
EXPRESSION_ZOOM = 1.25  # expression references are face close-ups


class SheetError(ValueError):
    """A reference sheet failed validation. `file` and `field` say where."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file = file
        self.field = field


@dataclass(frozen=True, eq=False)
class ReferenceImage:
    """One reference: its role, label and pixels (uint8 (H, W, 3) RGB, read-only)."""

    role: str  # one of ROLES
    label: str  # allowed labels depend on the role (ROLES)
    image: np.ndarray  # uint8 (H, W, 3)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SheetError("<memory>", "role", f"{self.role!r}; allowed: {', '.join(ROLES)}")
        if self.label not in ROLES[self.role]:
            allowed = ", ".join(ROLES[self.role])
            raise SheetError(
                "<memory>", "label", f"{self.label!r}; allowed for {self.role}: {allowed}"
            )
        image = np.asarray(self.image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise SheetError(
                "<memory>",
                "image",
                f"dtype/shape {image.dtype} {image.shape}; allowed: uint8 (H, W, 3)",
            )
        image = image.copy() if image.flags.writeable else image
        image.setflags(write=False)
        object.__setattr__(self, "image", image)

    @property
    def file_name(self) -> str:
        """The file name `write_sheet` uses for this image."""
        return f"{self.role}_{self.label}.png"


@dataclass(frozen=True, eq=False)
class ReferenceSheet:
    """A character's reference images, in manifest order."""

    name: str  # display name
    images: tuple[ReferenceImage, ...]
    seed: int | None = None  # the procedural character it was rendered from, if any

    def find(self, role: str, label: str) -> ReferenceImage | None:
        return next((im for im in self.images if im.role == role and im.label == label), None)

    @property
    def roles(self) -> list[tuple[str, str]]:
        return [(im.role, im.label) for im in self.images]


# --- validation --------------------------------------------------------------------------------


def _check_relative(file: object, field: str) -> str:
    """A manifest file entry must be a plain relative path that stays inside the sheet folder."""
    if not isinstance(file, str) or not file:
        raise SheetError(MANIFEST, field, f"{file!r}; allowed: a non-empty relative file name")
    path = PurePosixPath(file)
    if (
        path.is_absolute()
        or "\\" in file
        or ":" in file
        or any(part in ("..", "") for part in file.split("/"))
        or file.startswith("./")
    ):
        raise SheetError(
            file, field, "path escapes the sheet folder; allowed: a relative name such as front.png"
        )
    return file


def _decode(file: str, data: bytes, limits: SheetLimits) -> np.ndarray:
    if len(data) > limits.max_file_bytes:
        raise SheetError(
            file, "file size", f"{len(data)} bytes; allowed at most {limits.max_file_bytes}"
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            width, height = probe.size
            probe.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise SheetError(file, "image", f"unreadable or corrupt image ({error})") from None
    if fmt not in IMAGE_FORMATS:
        raise SheetError(file, "image", f"format {fmt}; allowed: {', '.join(IMAGE_FORMATS)}")
    for side, value in (("width", width), ("height", height)):
        if not limits.min_side <= value <= limits.max_side:
            raise SheetError(
                file, side, f"{value} px; allowed {limits.min_side} .. {limits.max_side} px"
            )
    try:
        with Image.open(io.BytesIO(data)) as img:
            rgb = img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise SheetError(file, "image", f"unreadable or corrupt image ({error})") from None


def _validate(
    manifest: object, read: Callable[[str], bytes], limits: SheetLimits
) -> ReferenceSheet:
    if not isinstance(manifest, dict):
        raise SheetError(MANIFEST, "toml", "not a table")
    unknown = set(manifest) - {"name", "seed", "image"}
    if unknown:
        raise SheetError(MANIFEST, sorted(unknown)[0], "unknown key; allowed: name, seed, image")
    name = manifest.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise SheetError(
            MANIFEST, "name", f"{name!r}; allowed: a string of 1 .. {MAX_NAME_CHARS} characters"
        )
    if not name.isprintable():
        raise SheetError(MANIFEST, "name", f"{name!r}; allowed: printable characters only")
    seed = manifest.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63
    ):
        raise SheetError(MANIFEST, "seed", f"{seed!r}; allowed: integer 0 .. 2**63-1")
    entries = manifest.get("image")
    if not isinstance(entries, list) or not entries:
        raise SheetError(MANIFEST, "image", "missing; allowed: 1 or more [[image]] tables")
    if len(entries) > limits.max_images:
        raise SheetError(
            MANIFEST, "image", f"{len(entries)} images; allowed at most {limits.max_images}"
        )
    seen_files: set[str] = set()
    seen_roles: set[tuple[str, str]] = set()
    total = 0
    images = []
    for i, entry in enumerate(entries):
        where = f"image[{i}]"
        if not isinstance(entry, dict):
            raise SheetError(
                MANIFEST, where, "not a table; allowed: [[image]] with file, role, label"
            )
        extra = set(entry) - {"file", "role", "label"}
        if extra:
            raise SheetError(
                MANIFEST, f"{where}.{sorted(extra)[0]}", "unknown key; allowed: file, role, label"
            )
        file = _check_relative(entry.get("file"), f"{where}.file")
        if file in seen_files:
            raise SheetError(file, f"{where}.file", "listed twice; allowed: each file once")
        seen_files.add(file)
        role = entry.get("role")
        if role not in ROLES:
            raise SheetError(file, f"{where}.role", f"{role!r}; allowed: {', '.join(ROLES)}")
        label = entry.get("label", "scene" if role == "global" else None)
        if label not in ROLES[role]:
            allowed = ", ".join(ROLES[role])
            raise SheetError(file, f"{where}.label", f"{label!r}; allowed for {role}: {allowed}")
        if (role, label) in seen_roles:
            raise SheetError(file, f"{where}.label", f"{role}/{label} appears twice; allowed once")
        seen_roles.add((role, label))
        data = read(file)
        total += len(data)
        if total > limits.max_total_bytes:
            raise SheetError(
                file, "total size", f"over {limits.max_total_bytes} bytes for the whole sheet"
            )
        images.append(ReferenceImage(role=role, label=label, image=_decode(file, data, limits)))
    if ("view", "front") not in seen_roles:
        raise SheetError(
            MANIFEST, "image", 'no role = "view" with label = "front"; a front view is required'
        )
    return ReferenceSheet(name=name, images=tuple(images), seed=seed)


def _parse_manifest(data: bytes) -> object:
    if len(data) > MAX_MANIFEST_BYTES:
        raise SheetError(
            MANIFEST, "size", f"{len(data)} bytes; allowed at most {MAX_MANIFEST_BYTES}"
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SheetError(MANIFEST, "toml", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise SheetError(MANIFEST, "toml", f"invalid TOML ({error})") from None


def load_sheet(directory: str | os.PathLike, limits: SheetLimits = SheetLimits()) -> ReferenceSheet:
    """Load and validate a sheet folder. Read-only: the folder is never modified."""
    root = Path(directory)
    if not root.is_dir():
        raise SheetError(str(root), "path", "not a folder; allowed: a folder with sheet.toml")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise SheetError(MANIFEST, MANIFEST, f"missing in {root}")
    real_root = root.resolve()

    def read(file: str) -> bytes:
        path = root / file
        try:
            path.resolve().relative_to(real_root)  # symlinks must not lead outside either
        except ValueError:
            raise SheetError(file, "file", "path escapes the sheet folder") from None
        if not path.is_file():
            raise SheetError(file, "file", f"not found in {root}")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise SheetError(
                file, "file size", f"{size} bytes; allowed at most {limits.max_file_bytes}"
            )
        return path.read_bytes()

    return _validate(_parse_manifest(manifest_path.read_bytes()), read, limits)


def sheet_from_files(
    manifest: bytes, files: dict[str, bytes], limits: SheetLimits = SheetLimits()
) -> ReferenceSheet:
    """Validate a sheet given in memory (the daemon's upload path): same rules as `load_sheet`."""

    def read(file: str) -> bytes:
        if file not in files:
            raise SheetError(file, "file", "listed in sheet.toml but not uploaded")
        return files[file]

    return _validate(_parse_manifest(manifest), read, limits)


# --- writing and rendering ---------------------------------------------------------------------


def manifest_text(sheet: ReferenceSheet) -> str:
    """The sheet.toml text for a sheet whose images are named by `ReferenceImage.file_name`."""
    # json.dumps of a str is a valid TOML basic string (same escapes).
    lines = [f"name = {json.dumps(sheet.name)}"]
    if sheet.seed is not None:
        lines.append(f"seed = {int(sheet.seed)}")
    for im in sheet.images:
        lines += [
            "",
            "[[image]]",
            f"file = {json.dumps(im.file_name)}",
            f"role = {json.dumps(im.role)}",
            f"label = {json.dumps(im.label)}",
        ]
    return "\n".join(lines) + "\n"


def write_sheet(sheet: ReferenceSheet, directory: str | os.PathLike) -> Path:
    """Write `sheet` as a folder (PNG images + sheet.toml), atomically: a reader sees the old
    folder or the complete new one, never a half-written one. Returns the folder path."""
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise SheetError(str(target), "path", "exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for im in sheet.images:
            Image.fromarray(im.image).save(tmp / im.file_name, optimize=True)
        (tmp / MANIFEST).write_text(manifest_text(sheet), encoding="utf-8")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "sheet")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.debug("wrote sheet %s (%d images) to %s", sheet.name, len(sheet.images), target)
    return target


def render_sheet(
    spec: CharacterSpec,
    size: int,
    *,
    name: str | None = None,
    expressions: tuple[str, ...] = SHEET_EXPRESSIONS,
) -> ReferenceSheet:
    """Render a complete sheet: a global scene shot, four views and labelled expressions."""
    from lpm_npc.synth.render import render_still

    images = [ReferenceImage("global", "scene", render_still(spec, size, zoom=GLOBAL_ZOOM))]
    for label in ROLES["view"]:
        still = (
            render_still(spec, size, back=True)
            if label == "back"
            else render_still(spec, size, yaw=VIEW_YAW[label])
        )
        images.append(ReferenceImage("view", label, still))
    for expression in expressions:
        images.append(
            ReferenceImage(
                "expression",
                expression,
                render_still(spec, size, expression=expression, zoom=EXPRESSION_ZOOM),
            )
        )
    return ReferenceSheet(
        name=name or f"character-{spec.seed}", images=tuple(images), seed=spec.seed
    )


def _square(image: np.ndarray) -> np.ndarray:
    """Pad a non-square image to a square with its border colour (keeps all of its content)."""
    h, w, _ = image.shape
    if h == w:
        return image
    side = max(h, w)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    out = np.empty((side, side, 3), np.uint8)
    out[...] = np.median(border, axis=0).astype(np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def sheet_to_array(sheet: ReferenceSheet, size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """All references as uint8 (R, size, size, 3), resized with PIL, and their (role, label)."""
    if not 8 <= size <= 4096:
        raise ValueError(f"size = {size}; allowed 8 .. 4096 px")
    out = np.empty((len(sheet.images), size, size, 3), np.uint8)
    for i, im in enumerate(sheet.images):
        square = _square(im.image)
        if square.shape[0] == size:
            out[i] = square
        else:
            out[i] = np.asarray(
                Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS)
            )
    return out, sheet.roles
