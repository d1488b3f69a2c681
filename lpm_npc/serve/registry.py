"""The character registry's domain logic: validate sheets, store them, cache their encodings.

`register()` takes a sheet in either wire form — images with roles, or a sheet.toml manifest plus
its files — checks the size limits first (RESOURCE_EXHAUSTED naming the limit), validates and
decodes it through the synth loader (`synth.sheet.sheet_from_files`; a `SheetError` becomes
INVALID_ARGUMENT naming the file and field), and stores the canonical sheet directory
(`synth.sheet.write_sheet`) under its content version. Nothing is written unless the whole
sheet is valid, so a rejected request leaves the store byte-identical.

`prepared()` returns a version's reference encoding: the stored sheet as images and roles
(`synth.sheet.sheet_to_array`, the engine never sees a sheet) through `generator.prepare`,
computed once per version and keeping the most recent `cache_size` in memory; concurrent callers
share one computation. This module does not talk gRPC and does not run the model on its own
thread (it is handed a function that runs calls on the generator's thread).
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lpm_npc.config import SheetLimits
from lpm_npc.engine.protocol import ChunkGenerator, PreparedCharacter
from lpm_npc.serve.errors import InvalidArgument, NotFound, ResourceExhausted
from lpm_npc.serve.store import (
    CharacterStore,
    StoredCharacter,
    StoredReference,
    pixels_digest,
    validate_character_id,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "sheet.toml"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ImageIn:
    """One image of the images form."""

    role: str
    label: str
    filename: str
    content: bytes


def _check_limits(contents: list[tuple[str, bytes]], limits: SheetLimits, n_images: int) -> None:
    if n_images > limits.max_images:
        raise ResourceExhausted(
            f"sheet has {n_images} images; at most {limits.max_images} are allowed (max_images)"
        )
    total = 0
    for name, data in contents:
        if len(data) > limits.max_file_bytes:
            raise ResourceExhausted(
                f"file {name!r} has {len(data)} bytes; at most {limits.max_file_bytes} per file "
                "(max_file_bytes)"
            )
        total += len(data)
    if total > limits.max_total_bytes:
        raise ResourceExhausted(
            f"sheet has {total} bytes; at most {limits.max_total_bytes} in all (max_total_bytes)"
        )


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 0x20 for c in value):
        raise InvalidArgument(f"control characters are not allowed in {value!r}")
    return f'"{escaped}"'


def images_manifest(name: str, images: list[ImageIn]) -> bytes:
    """The sheet.toml that describes an images-form upload (one [[image]] per image)."""
    lines = [f"name = {_toml_string(name)}", ""]
    for image in images:
        lines += [
            "[[image]]",
            f"file = {_toml_string(image.filename)}",
            f"role = {_toml_string(image.role)}",
        ]
        if image.label:
            lines.append(f"label = {_toml_string(image.label)}")
        lines.append("")
    return "\n".join(lines).encode()


class CharacterRegistry:
    """Validated, stored characters and their cached reference encodings."""

    def __init__(self, store: CharacterStore, limits: SheetLimits, cache_size: int = 16) -> None:
        self.store = store
        self.limits = limits
        self.cache_size = cache_size
        self._prepared: OrderedDict[str, PreparedCharacter] = OrderedDict()
        self._pending: dict[str, asyncio.Future] = {}

    # --- registration --------------------------------------------------------------------------
    def register(
        self,
        character_id: str,
        display_name: str,
        *,
        images: list[ImageIn] | None = None,
        manifest: bytes | None = None,
        files: dict[str, bytes] | None = None,
    ) -> tuple[StoredCharacter, bool]:
        """Validate and store a sheet (images form, or manifest + files); see the docstring."""
        from lpm_npc.synth.sheet import SheetError, sheet_from_files, write_sheet

        if images is not None:
            if not images:
                raise InvalidArgument("images: at least one image is required")
            _check_limits([(i.filename, i.content) for i in images], self.limits, len(images))
            if not character_id:
                raise InvalidArgument("character_id is required with the images form")
            validate_character_id(character_id)
            files = {}
            for image in images:
                if image.filename in files:
                    raise InvalidArgument(f"images: file name {image.filename!r} appears twice")
                files[image.filename] = image.content
            manifest = images_manifest(character_id, images)
        elif manifest is not None:
            files = dict(files or {})
            image_files = [(n, b) for n, b in files.items() if n != MANIFEST_NAME]
            _check_limits([(MANIFEST_NAME, manifest), *image_files], self.limits, len(image_files))
        else:
            raise InvalidArgument("sheet: give either images or a manifest")
        if character_id:
            validate_character_id(character_id)
        try:
            sheet = sheet_from_files(manifest, files, self.limits)
        except SheetError as error:
            raise InvalidArgument(f"sheet: {error}") from error
        # Without an explicit id, the manifest's display name becomes one ("Old Mira" -> "Old-Mira").
        character_id = character_id or _ID_UNSAFE.sub("-", sheet.name).strip("-_")[:64]
        validate_character_id(character_id, "character_id (from the manifest name)")
        references = [
            StoredReference(
                role=ref.role,
                label=ref.label,
                width=int(ref.image.shape[1]),
                height=int(ref.image.shape[0]),
                sha256=pixels_digest(ref.image),
            )
            for ref in sheet.images
        ]
        with tempfile.TemporaryDirectory() as tmp:
            written = write_sheet(sheet, Path(tmp) / "sheet")
            stored_files = {p.name: p.read_bytes() for p in sorted(written.iterdir())}
        return self.store.put(character_id, display_name or sheet.name, stored_files, references)

    # --- lookup ----------------------------------------------------------------------------------
    def get(self, ref: str) -> StoredCharacter:
        return self.store.get(ref)

    def list(self, character_id: str = "") -> list[StoredCharacter]:
        return self.store.list(character_id or None)

    def delete(self, ref: str) -> list[str]:
        versions = self.store.delete(ref)
        for version in versions:
            if not any(r.version == version for r in self.store.list()):
                self._prepared.pop(version, None)
        return versions

    def is_prepared(self, version: str) -> bool:
        return version in self._prepared

    def reference_images(
        self, record: StoredCharacter, size: int
    ) -> tuple[np.ndarray, list[tuple[str, str]], str]:
        """The stored sheet as the engine takes it: uint8 (R, size, size, 3), roles, name."""
        from lpm_npc.synth.sheet import SheetError, load_sheet, sheet_to_array

        try:
            sheet = load_sheet(self.store.sheet_dir(record.version), self.limits)
        except SheetError as error:  # a stored sheet was valid when written: the store is damaged
            raise NotFound(f"stored sheet of {record.version} is unreadable: {error}") from error
        images, roles = sheet_to_array(sheet, size)
        return images, roles, sheet.name

    async def prepared(
        self,
        record: StoredCharacter,
        run_in_worker: Callable[..., Awaitable[Any]],
        generator: ChunkGenerator,
    ) -> PreparedCharacter:
        """The version's reference encoding, computed once (concurrent callers share it)."""
        version = record.version
        if version in self._prepared:
            self._prepared.move_to_end(version)
            return self._prepared[version]
        if version in self._pending:
            return await asyncio.shield(self._pending[version])
        future = asyncio.get_running_loop().create_future()
        self._pending[version] = future
        try:
            size = generator.cfg.image_size
            images, roles, name = await asyncio.to_thread(self.reference_images, record, size)
            encoding = await run_in_worker(lambda: generator.prepare(images, roles, name=name))
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._pending[version]
        future.set_result(encoding)
        self._prepared[version] = encoding
        while len(self._prepared) > self.cache_size:
            evicted, _ = self._prepared.popitem(last=False)
            log.info("evicted prepared character %s", evicted[:12])
        return encoding
