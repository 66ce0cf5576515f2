"""Atomic, durable file and folder writes: a result appears under its final name complete or
not at all, so a killed run never leaves a half-written file that a resumed run takes as done.

The temporary sibling is written in the same folder (a rename across file systems is not
atomic), hidden, and keeps the final suffix so that writers that pick the format from the
name (PIL) still work.

A rename alone survives a killed process but not a power cut: the file system may commit the
rename before the data, and a resumed run then finds an empty file under the final name and
skips the image. So the data is fsynced before the rename and the parent folder after it, the
write, fsync, rename, fsync-folder sequence POSIX needs (Dan Luu, "Files are hard").
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Windows cannot open a folder as a file descriptor: there only the files' data is synced.
_CAN_SYNC_FOLDERS = os.name != "nt"


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _fsync_file(path: Path) -> None:
    # Windows' fsync (_commit) needs a descriptor open for writing; POSIX only needs read,
    # which also works on a file its writer made read-only.
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    """Make the entries of folder `path` (creations, renames) durable, where that is possible."""
    if not _CAN_SYNC_FOLDERS:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        # Some file systems (network mounts, FUSE, WSL's drvfs) cannot sync a folder; the
        # rename stays atomic, only its durability across a power cut is not promised there.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then each folder after its contents, `root` last."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            file = Path(folder, name)
            if not file.is_symlink():  # a link's target is not part of this result
                _fsync_file(file)
        _fsync_folder(Path(folder))


@contextmanager
def atomic_file(path: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` in one rename.

    The folder of `path` is created if needed. The data is on disk before the rename and the
    rename is on disk when this returns. On an exception the temporary file is removed and
    `path` is left as it was. durable=False skips both fsyncs: still atomic for a killed
    process, for caches whose readers check what they read (a power cut may leave an empty or
    partial file under the final name) and which write too often to wait for the disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    try:
        yield temporary
        if durable:
            _fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if durable:
        _fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically and durably."""
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it takes the place of folder `path`.

    Every file in it and the folder itself are on disk before the rename, and the rename is on
    disk when this returns. An existing `path` is removed just before the rename (a kill in
    between leaves no folder, which a resumed run redoes). On an exception the temporary
    folder is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    temporary.mkdir()
    try:
        yield temporary
        _fsync_tree(temporary)
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    _fsync_folder(path.parent)
