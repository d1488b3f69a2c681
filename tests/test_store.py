"""The character store: content addressing, immutability, id validation, crash recovery."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from lpm_npc.serve.errors import InvalidArgument, NotFound
from lpm_npc.serve.store import (
    CharacterStore,
    StoredReference,
    StoreFull,
    canonical_version,
    parse_ref,
)


def _sheet(*contents: bytes) -> tuple[dict[str, bytes], list[StoredReference]]:
    files = {"sheet.toml": b'name = "x"\n'}
    refs = []
    for i, content in enumerate(contents):
        name = f"{i:02d}.png"
        files[name] = content
        sha = hashlib.sha256(content).hexdigest()
        refs.append(StoredReference("view", ["front", "left", "right"][i], 64, 64, sha))
    return files, refs


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = CharacterStore(tmp_path)
    files, refs = _sheet(b"a", b"b")
    record, created = store.put("ann", "Ann", files, refs)
    assert created and len(record.version) == 64 and record.display_name == "Ann"
    assert store.get("ann") == record
    assert store.get(f"ann@{record.version[:8]}") == record
    again, created = store.put("ann", "Ann", files, refs)
    assert not created and again == record
    files2, refs2 = _sheet(b"a", b"c")
    second, _ = store.put("ann", "", files2, refs2)
    assert second.version != record.version
    assert store.get("ann") == second  # newest
    assert [r.version for r in store.list("ann")] == [record.version, second.version]
    assert store.read_files(record.version) == files
    assert store.delete(f"ann@{record.version}") == [record.version]
    assert [r.version for r in store.list()] == [second.version]
    assert store.delete("ann") == [second.version]
    assert store.list() == []
    assert not any(p.is_dir() for p in (tmp_path / "objects").iterdir())
    with pytest.raises(NotFound):
        store.get("ann")


def test_version_ignores_names_and_order(tmp_path: Path) -> None:
    a = canonical_version([("view", "front", "11"), ("global", "", "22")])
    b = canonical_version([("global", "", "22"), ("view", "front", "11")])
    assert a == b and a != canonical_version([("view", "left", "11"), ("global", "", "22")])
    store = CharacterStore(tmp_path)
    files, refs = _sheet(b"a")
    one, _ = store.put("one", "", files, refs)
    renamed = {"sheet.toml": b"other manifest", "zz.png": b"a"}
    two, _ = store.put(
        "two", "", renamed, [StoredReference("view", "front", 64, 64, refs[0].sha256)]
    )
    assert one.version == two.version
    store.delete("one")
    assert store.read_files(two.version)["sheet.toml"] == b'name = "x"\n'  # shared object kept


@pytest.mark.parametrize(
    "ref", ["../etc", "a/b", "", ".hidden", "x" * 65, "ann@XYZ", "ann@123", "ann@../../", "ann/..@"]
)
def test_bad_refs_are_invalid(tmp_path: Path, ref: str) -> None:
    store = CharacterStore(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(InvalidArgument):
        store.get(ref)
    with pytest.raises(InvalidArgument):
        store.delete(ref)
    assert _snapshot(tmp_path) == before


def test_bad_ids_and_filenames_write_nothing(tmp_path: Path) -> None:
    store = CharacterStore(tmp_path)
    before = _snapshot(tmp_path)
    files, refs = _sheet(b"a")
    with pytest.raises(InvalidArgument, match="character_id"):
        store.put("../../evil", "", files, refs)
    with pytest.raises(InvalidArgument, match="filename"):
        store.put("ok", "", {"../x.png": b"a"}, refs)
    assert _snapshot(tmp_path) == before
    assert parse_ref("ok@" + "a" * 64) == ("ok", "a" * 64)


def test_recovery_removes_crash_leftovers(tmp_path: Path) -> None:
    store = CharacterStore(tmp_path)
    files, refs = _sheet(b"a")
    record, _ = store.put("ann", "", files, refs)
    # what a kill -9 can leave: a temp object, a temp record, an object without its record
    (tmp_path / "objects" / ".tmp-deadbeef").mkdir()
    (tmp_path / "objects" / ".tmp-deadbeef" / "00.png").write_bytes(b"half")
    (tmp_path / "characters" / "ann" / ".tmp-cafe").write_bytes(b"{")
    orphan = tmp_path / "objects" / ("f" * 64)
    orphan.mkdir()
    reopened = CharacterStore(tmp_path)
    assert reopened.list() == [record]
    names = {p.name for p in tmp_path.rglob("*")}
    assert not any(n.startswith(".tmp-") for n in names) and "f" * 64 not in names
    assert json.loads((tmp_path / "characters" / "ann" / f"{record.version}.json").read_text())


def test_disk_full_at_any_write_keeps_no_partial_version_and_says_so(tmp_path: Path, monkeypatch):
    store = CharacterStore(tmp_path)
    kept_files, kept_refs = _sheet(b"kept")
    kept, _ = store.put("kept", "", kept_files, kept_refs)
    files, refs = _sheet(b"a", b"b")
    real_fsync = os.fsync
    calls = []

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    # A dry run on a copy counts the fsyncs of one registration: each is a point the disk can fill.
    probe = CharacterStore(tmp_path / "probe")
    monkeypatch.setattr(os, "fsync", counting_fsync)
    probe.put("new", "", files, refs)
    monkeypatch.undo()
    assert len(calls) >= 4  # two images + manifest, their directory, the record, its directory
    root_before = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("probe")}
    for failing in range(len(calls)):
        seen: list[int] = []

        def fsync_until_full(fd: int, failing: int = failing, seen: list[int] = seen) -> None:
            seen.append(fd)
            if len(seen) > failing:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync_until_full)
        with pytest.raises(StoreFull, match=r"disk is full \(ENOSPC\).*nothing was stored"):
            store.put("new", "", files, refs)
        monkeypatch.undo()
        after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("probe")}
        assert after == root_before, f"fsync {failing}: the store changed"
        assert [r.character_id for r in store.list()] == ["kept"]
        assert not [*tmp_path.rglob(".tmp-*"), *tmp_path.rglob(".trash-*")]
    record, created = store.put("new", "", files, refs)  # space again: it works
    assert created and store.get("new").version == record.version
    assert store.get("kept").version == kept.version
