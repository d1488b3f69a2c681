"""The character registry on disk: content-addressed, immutable versions, crash-safe writes.

Layout under the store root::

    FORMAT                          "lpm-npc-store 1"
    objects/<version>/<files>       a sheet's files (manifest + images), never modified
    characters/<id>/<version>.json  one record per registered (id, version)

`version` is the SHA-256 (hex) of the canonical encoding of a sheet: the compact UTF-8 JSON
`{"format":1,"images":[[role,label,pixels_sha256],...]}` with the triples sorted, where
`pixels_sha256` hashes an image's decoded pixels (see `pixels_digest`); file names, file
formats, manifest formatting and image order do not change it. The same content registered under
two ids shares one object directory.

Durability (survives kill -9 at any instant): every file is written to a `.tmp-*` name, fsynced
and renamed into place, and the directory is fsynced; an object directory is complete before
the record that names it exists. At start-up, leftover `.tmp-*`/`.trash-*` entries and objects no
record names are removed, so a crash mid-write leaves nothing visible. A write that fails
(ENOSPC: the disk is full; any other OSError) removes what it wrote and raises `StoreFull`
(RESOURCE_EXHAUSTED) or `StoreWriteError` (INTERNAL) naming the version and the cause; the
version never becomes visible. Ids must match
`CHARACTER_ID` (so an id can never be a path) and versions are 64 hex digits.

This module stores bytes it is handed; validating a sheet is the registry's job (`registry.py`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from lpm_npc.serve.errors import Internal, InvalidArgument, NotFound, ResourceExhausted

log = logging.getLogger(__name__)

CHARACTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
VERSION = re.compile(r"^[0-9a-f]{64}$")
VERSION_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STORE_FORMAT = "lpm-npc-store 1"
_TEMP_PREFIXES = (".tmp-", ".trash-")


class StoreFull(ResourceExhausted):
    """The store's disk is full (ENOSPC); nothing of the registration was kept."""


class StoreWriteError(Internal):
    """The store could not be written (an OSError other than ENOSPC); nothing was kept."""


@dataclass(frozen=True)
class StoredReference:
    role: str
    label: str
    width: int
    height: int
    sha256: str  # pixels_digest of the decoded image


@dataclass(frozen=True)
class StoredCharacter:
    character_id: str
    version: str
    display_name: str
    registered_at_unix_ns: int
    references: tuple[StoredReference, ...]
    size_bytes: int


def validate_character_id(character_id: str, field: str = "character_id") -> str:
    if not CHARACTER_ID.match(character_id):
        raise InvalidArgument(
            f"{field} {character_id!r} is invalid: 1-64 characters of [A-Za-z0-9_-] starting "
            "with a letter or digit"
        )
    return character_id


def parse_ref(ref: str) -> tuple[str, str | None]:
    """ "ID" or "ID@VERSION" (VERSION: 64 hex digits or a prefix of >= 8) -> (id, version)."""
    character_id, sep, version = ref.partition("@")
    validate_character_id(character_id, "ref")
    if not sep:
        return character_id, None
    if not VERSION_PREFIX.match(version):
        raise InvalidArgument(
            f"ref version {version!r} is invalid: 8-64 lowercase hex digits (a sha256 or prefix)"
        )
    return character_id, version


def pixels_digest(image) -> str:  # noqa: ANN001 - a uint8 numpy array (H, W, 3)
    """SHA-256 hex of "HxW" + the row-major RGB8 bytes of a decoded image."""
    digest = hashlib.sha256(f"{image.shape[0]}x{image.shape[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def canonical_version(references: Iterable[tuple[str, str, str]]) -> str:
    """SHA-256 hex of the canonical encoding of (role, label, image sha256) triples."""
    triples = sorted([list(t) for t in references])
    encoded = json.dumps({"format": 1, "images": triples}, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: temp file, fsync, rename, fsync the directory."""
    temp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class CharacterStore:
    """Registered character sheets under one directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._records = self.root / "characters"
        self._lock = threading.Lock()
        self._objects.mkdir(parents=True, exist_ok=True)
        self._records.mkdir(parents=True, exist_ok=True)
        marker = self.root / "FORMAT"
        if not marker.exists():
            _write_durable(marker, (STORE_FORMAT + "\n").encode())
        elif marker.read_text().strip() != STORE_FORMAT:
            raise ValueError(f"{self.root}: not an {STORE_FORMAT!r} store")
        self._recover()

    # --- start-up recovery -------------------------------------------------------------------
    def _recover(self) -> None:
        """Remove what a crash left behind: temp/trash entries and unreferenced objects."""
        for parent in (self.root, self._objects, self._records, *self._records.iterdir()):
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                if entry.name.startswith(_TEMP_PREFIXES):
                    log.info("removing leftover %s", entry)
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        referenced = {r.version for r in self.list()}
        for entry in self._objects.iterdir():
            if entry.name not in referenced:
                log.info("removing unreferenced object %s", entry.name)
                shutil.rmtree(entry)

    # --- writing -------------------------------------------------------------------------------
    def put(
        self,
        character_id: str,
        display_name: str,
        files: dict[str, bytes],
        references: list[StoredReference],
    ) -> tuple[StoredCharacter, bool]:
        """Store a validated sheet; return (record, created). Idempotent per (id, content)."""
        validate_character_id(character_id)
        for name in files:
            if not FILENAME.match(name):
                raise InvalidArgument(
                    f"filename {name!r} is invalid: must match {FILENAME.pattern}"
                )
        version = canonical_version((r.role, r.label, r.sha256) for r in references)
        with self._lock:
            record_path = self._records / character_id / f"{version}.json"
            if record_path.exists():
                return self._read_record(record_path), False
            created_object = not (self._objects / version).is_dir()
            try:
                return self._put_new(character_id, display_name, files, references, version)
            except OSError as error:
                self._undo_put(record_path, version if created_object else None)
                what = f"registering {character_id}@{version[:12]}"
                if error.errno == errno.ENOSPC:
                    raise StoreFull(
                        f"the store's disk is full (ENOSPC) while {what}: nothing was stored; "
                        f"free space under {self.root}"
                    ) from error
                raise StoreWriteError(
                    f"could not write the store while {what}: {error}; nothing was stored"
                ) from error

    def _put_new(
        self,
        character_id: str,
        display_name: str,
        files: dict[str, bytes],
        references: list[StoredReference],
        version: str,
    ) -> tuple[StoredCharacter, bool]:
        """Write the object, then the record that makes it visible (lock held)."""
        record_path = self._records / character_id / f"{version}.json"
        self._write_object(version, files)
        record = StoredCharacter(
            character_id=character_id,
            version=version,
            display_name=display_name or character_id,
            registered_at_unix_ns=time.time_ns(),
            references=tuple(references),
            size_bytes=sum(len(b) for b in files.values()),
        )
        record_path.parent.mkdir(exist_ok=True)
        _fsync_dir(self._records)
        _write_durable(record_path, json.dumps(asdict(record), indent=1).encode())
        return record, True

    def _undo_put(self, record_path: Path, new_object: str | None) -> None:
        """After a failed put: no record, and no object this put created (lock held)."""
        record_path.unlink(missing_ok=True)
        if new_object is not None and (self._objects / new_object).is_dir():
            trash = self._objects / f".trash-{uuid.uuid4().hex}"
            os.rename(self._objects / new_object, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def _write_object(self, version: str, files: dict[str, bytes]) -> None:
        final = self._objects / version
        if final.is_dir():
            return  # same content under another id: objects are immutable, share it
        temp = self._objects / f".tmp-{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            for name, data in sorted(files.items()):
                with open(temp / name, "xb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            _fsync_dir(temp)
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(self._objects)

    def delete(self, ref: str) -> list[str]:
        """Remove one version ("ID@VERSION") or all versions ("ID"); return versions removed."""
        character_id, version = parse_ref(ref)
        with self._lock:
            doomed = (
                [self._resolve(character_id, version)]
                if version
                else [r for r in self.list(character_id)]
            )
            if not doomed:
                raise NotFound(f"character {character_id!r} not found")
            for record in doomed:
                path = self._records / character_id / f"{record.version}.json"
                path.unlink()
            _fsync_dir(self._records / character_id)
            if not any((self._records / character_id).iterdir()):
                (self._records / character_id).rmdir()
            still_used = {r.version for r in self.list()}
            for record in doomed:
                if record.version not in still_used:
                    obj = self._objects / record.version
                    trash = self._objects / f".trash-{uuid.uuid4().hex}"
                    os.rename(obj, trash)  # atomic disappearance; the rmtree may be interrupted
                    shutil.rmtree(trash)
            _fsync_dir(self._objects)
            return [r.version for r in doomed]

    # --- reading -------------------------------------------------------------------------------
    def _read_record(self, path: Path) -> StoredCharacter:
        raw = json.loads(path.read_text())
        raw["references"] = tuple(StoredReference(**r) for r in raw["references"])
        return StoredCharacter(**raw)

    def list(self, character_id: str | None = None) -> list[StoredCharacter]:
        """Records ordered by id then registration time."""
        if character_id is not None:
            validate_character_id(character_id)
            dirs = [self._records / character_id]
        else:
            dirs = sorted(p for p in self._records.iterdir() if CHARACTER_ID.match(p.name))
        records = []
        for directory in dirs:
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.suffix == ".json" and VERSION.match(path.stem):
                    records.append(self._read_record(path))
        return sorted(records, key=lambda r: (r.character_id, r.registered_at_unix_ns, r.version))

    def _resolve(self, character_id: str, version: str | None) -> StoredCharacter:
        versions = self.list(character_id)
        if not versions:
            raise NotFound(f"character {character_id!r} not found")
        if version is None:
            return versions[-1]
        matches = [r for r in versions if r.version.startswith(version)]
        if not matches:
            raise NotFound(f"character {character_id!r} has no version {version!r}")
        if len(matches) > 1:
            raise InvalidArgument(f"version prefix {version!r} is ambiguous: give more digits")
        return matches[0]

    def get(self, ref: str) -> StoredCharacter:
        """The record of "ID" (newest version) or "ID@VERSION"."""
        return self._resolve(*parse_ref(ref))

    def sheet_dir(self, version: str) -> Path:
        if not VERSION.match(version):
            raise InvalidArgument(f"version {version!r} is invalid: 64 lowercase hex digits")
        path = self._objects / version
        if not path.is_dir():
            raise NotFound(f"no stored sheet for version {version}")
        return path

    def read_files(self, version: str) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.sheet_dir(version).iterdir())}
