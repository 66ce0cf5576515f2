"""Atomic writes are durable: the data is fsynced before the rename that publishes it, the
parent folder after it, and a failure anywhere leaves the old result and no temporary behind.

os.fsync and os.replace are wrapped to log what happened in which order; an fsync is logged
by the inode of its descriptor, which a rename keeps, so it can be matched to the final path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from segany.formats.atomic import atomic_file, atomic_folder, atomic_write_text

# Folders cannot be fsynced on Windows; there the folder events are expected to be absent.
SYNCS_FOLDERS = os.name != "nt"


@pytest.fixture
def events(monkeypatch):
    """The log of ("fsync", inode) and ("replace", final name) events, in order."""
    log: list[tuple[str, object]] = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd):
        log.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def logged_replace(src, dst):
        replace(src, dst)
        log.append(("replace", Path(dst).name))

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(os, "replace", logged_replace)
    return log


def inode(path: Path) -> int:
    return path.stat().st_ino


def folder_sync(path: Path) -> list[tuple[str, object]]:
    return [("fsync", inode(path))] if SYNCS_FOLDERS else []


def test_atomic_file_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, events):
    target = tmp_path / "out.json"
    with atomic_file(target) as temporary:
        temporary.write_text("{}", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "{}"
    expected = [("fsync", inode(target)), ("replace", "out.json"), *folder_sync(tmp_path)]
    assert events == expected


def test_atomic_write_text_is_durable_too(tmp_path, events):
    target = tmp_path / "new" / "failed.tsv"  # the folder is created
    atomic_write_text(target, "a\tb\n")
    assert target.read_text(encoding="utf-8") == "a\tb\n"
    assert events == [
        ("fsync", inode(target)),
        ("replace", "failed.tsv"),
        *folder_sync(target.parent),
    ]


@pytest.mark.parametrize("existing", [False, True])
def test_atomic_folder_syncs_every_file_and_folder_before_the_rename(tmp_path, events, existing):
    folder = tmp_path / "masks"
    if existing:
        folder.mkdir()
        (folder / "old.png").write_text("old")
    with atomic_folder(folder) as temporary:
        (temporary / "0.png").write_text("mask")
        (temporary / "sub").mkdir()
        (temporary / "sub" / "1.png").write_text("mask")
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "sub"]

    rename = events.index(("replace", "masks"))
    before, after = events[:rename], events[rename + 1 :]
    files = {("fsync", inode(folder / "0.png")), ("fsync", inode(folder / "sub" / "1.png"))}
    folders = folder_sync(folder / "sub") + folder_sync(folder)
    assert set(before) == files | set(folders) and len(before) == len(files) + len(folders)
    if SYNCS_FOLDERS:
        # A folder is synced after the files in it, the folder renamed itself last of all.
        assert before.index(folders[0]) > before.index(("fsync", inode(folder / "sub" / "1.png")))
        assert before[-1] == ("fsync", inode(folder))
    assert after == folder_sync(tmp_path)


def test_an_exception_in_the_block_publishes_and_syncs_nothing(tmp_path, events):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert target.read_text() == "old"

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "old.png").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_folder(folder) as temporary:
        (temporary / "0.png").write_text("new")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "x.json"]
    assert [p.name for p in folder.iterdir()] == ["old.png"]
    assert events == []


def test_a_failed_fsync_leaves_the_old_result_and_no_temporary(tmp_path, monkeypatch):
    def broken_disk(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken_disk)
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_text(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert target.read_text() == "old"

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "old.png").write_text("old")
    with pytest.raises(OSError, match="I/O error"), atomic_folder(folder) as temporary:
        (temporary / "0.png").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "x.json"]
    assert [p.name for p in folder.iterdir()] == ["old.png"]


@pytest.mark.skipif(not SYNCS_FOLDERS, reason="folders are never fsynced on Windows")
def test_a_file_system_that_cannot_sync_folders_still_gets_the_write(tmp_path, monkeypatch):
    fsync = os.fsync

    def no_folder_sync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", no_folder_sync)
    atomic_write_text(tmp_path / "x.json", "new")
    with atomic_folder(tmp_path / "f") as temporary:
        (temporary / "0.png").write_text("new")
    assert (tmp_path / "x.json").read_text() == "new"
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["0.png"]
