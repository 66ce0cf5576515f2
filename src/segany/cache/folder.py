"""`BoundedFolder`: a folder of cache files whose sizes add up to at most a byte bound, the least
recently used files deleted first. The disk half of every segany store (embeddings, previous
answers, map tiles), shared safely by the worker processes of one server.

How the bound holds across processes: each write adds its file's size to a running total kept
in the folder (`.usage`), under an exclusive file lock (`.lock`). A write that takes the total
over the bound runs an eviction pass under the same lock: scan the folder (sizes, last use),
then delete the least recently used files until the total is down to `LOW_WATER` of the bound
(so that a full folder is not rescanned on every write). The scan also corrects the total for
whatever the writes could not see (a replaced file counted twice, files deleted by hand, files
of an older segany).

Last use is a file's access time, set explicitly on every read (`touch`; mounts with noatime
do not stop an explicit set) and its modification time when written: the modification time is
left alone, so it stays the time the content was made (the tile cache's freshness).

A reader racing an eviction gets a miss (the file is gone), never a crash; a file removed under
an eviction pass is skipped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from segany.cache.locks import file_lock
from segany.cache.memory import ByteLRU
from segany.errors import ConfigError
from segany.formats.atomic import atomic_file

logger = logging.getLogger(__name__)

LOW_WATER = 0.9  # an eviction pass leaves the files of the most recent 90% of the bound
_LOCK_NAME = ".lock"
_USAGE_NAME = ".usage"
_USAGE_WIDTH = 20  # digits of the running total, zero-padded: every write is the same length


@dataclass(frozen=True)
class _File:
    """One file as a scan saw it; `nbytes` lets `ByteLRU` rank files like memory entries."""

    path: Path
    nbytes: int


class _TooLarge(Exception):
    """A new file larger than the whole bound (internal: it is not kept)."""


class BoundedFolder:
    """Files under `directory` (created if missing), at most `max_bytes` in total.

    max_bytes: None for no bound (nothing is counted or evicted, as for the CLI's own cache).
    durable: fsync each write (`atomic_file`); off for stores written on every click, whose
        readers check what they read and treat a damaged file as a miss.
    Files and folders whose names start with "." at the top (the lock, the running total,
    other lock folders) are the owners' bookkeeping: never counted, never evicted.
    Thread-safe, and safe for processes sharing the folder.
    """

    def __init__(
        self, directory: Path | str, max_bytes: int | None = None, durable: bool = False
    ) -> None:
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0
        ):
            raise ConfigError(f"a disk bound must be a byte count >= 0, got {max_bytes!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.durable = durable
        self._thread_lock = threading.Lock()  # file locks do not order threads on Windows
        if max_bytes is not None:
            with self._locked():  # a lowered bound, or files left by an older segany
                self._write_usage(self._evict())

    def write(self, path: Path, save: Callable[[Path], None]) -> bool:
        """Make the file `path` (inside the folder) with `save(temporary)`, which writes a
        temporary sibling renamed onto `path` when it returns; then evict what the bound says.

        Returns False, keeping nothing, for a file larger than `LOW_WATER` of the bound (what an
        eviction pass keeps) or when the
        write fails (disk full, folder not writable: logged): a cache that cannot store only
        costs recomputation. Other exceptions raised by `save` reach the caller.
        """
        try:
            with atomic_file(path, durable=self.durable) as temporary:
                save(temporary)
                # Stamped here, not left to the kernel: its timestamps are coarse (a few ms),
                # and last use must order writes and reads (`touch`) alike.
                now = time.time_ns()
                os.utime(temporary, ns=(now, now))
                size = temporary.stat().st_size
                if self.max_bytes is not None and size > self._kept_bytes:
                    raise _TooLarge
        except _TooLarge:
            return False
        except OSError as exc:
            logger.warning("cache: cannot write %s (%s)", path, exc)
            return False
        if self.max_bytes is not None:
            with self._locked():
                total = self._read_usage()
                # A missing total is recounted by the scan, which sees this file already.
                total = self._evict() if total is None else total + size
                if total > self.max_bytes:
                    total = self._evict()
                self._write_usage(total)
        return True

    def read_bytes(self, path: Path) -> bytes | None:
        """The content of `path`, now its most recent use; None when there is no such file
        (never written, or evicted)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        self.touch(path)
        return data

    def touch(self, path: Path) -> None:
        """Mark `path` used now (its access time; its modification time is kept). A file
        evicted meanwhile is simply not there."""
        try:
            modified = os.stat(path).st_mtime_ns
            os.utime(path, ns=(time.time_ns(), modified))
        except FileNotFoundError:
            pass
        except OSError as exc:  # read-only file or folder: it then ages by its write time
            logger.debug("cache: cannot mark %s used (%s)", path, exc)

    def remove(self, path: Path, inode: int | None = None) -> None:
        """Delete `path` and take its bytes off the total; with `inode`, only if `path` is still
        that file (not a good one another writer put there since)."""
        try:
            stat = path.stat()
            if inode is not None and stat.st_ino != inode:
                return
            path.unlink()
        except FileNotFoundError:
            return
        if self.max_bytes is not None:
            with self._locked():
                total = self._read_usage()
                if total is not None:
                    self._write_usage(max(0, total - stat.st_size))

    def usage(self) -> int:
        """Bytes of the folder's files, counted now."""
        return sum(file.nbytes for _, file in self._scan())

    @property
    def _kept_bytes(self) -> int:
        assert self.max_bytes is not None
        return int(self.max_bytes * LOW_WATER)

    # ---- under the lock --------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, file_lock(self.directory / _LOCK_NAME):
            yield

    def _evict(self) -> int:
        """Scan, delete the least recently used files if the folder is over its bound; return
        the bytes left."""
        assert self.max_bytes is not None
        files = sorted(self._scan(), key=lambda found: found[0])  # least recently used first
        total = sum(file.nbytes for _, file in files)
        if total <= self.max_bytes:
            return total
        stuck: list[_File] = []  # files that would not go (permissions): they still take room

        def evicted(_key: str, file: _File) -> None:
            if not self._delete(file):
                stuck.append(file)
                kept.max_bytes -= file.nbytes  # so the LRU goes on evicting others instead

        kept = ByteLRU(self._kept_bytes, on_evict=evicted)
        for _, file in files:
            if not kept.put(str(file.path), file):
                evicted(str(file.path), file)  # alone larger than what may stay
        return kept.nbytes + sum(file.nbytes for file in stuck)

    def _delete(self, file: _File) -> bool:
        """Delete an evicted file (and the folders that leaves empty); False if it stays."""
        try:
            file.path.unlink()
        except FileNotFoundError:
            pass  # removed by its owner meanwhile
        except OSError as exc:
            logger.warning("cache: cannot evict %s (%s)", file.path, exc)
            return False
        # Folders emptied by evictions go too (the tile cache's z/x folders would pile up).
        folder = file.path.parent
        while folder != self.directory and self.directory in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone already
                break
            folder = folder.parent
        return True

    def _scan(self) -> list[tuple[int, _File]]:
        """(last use in ns, file) for each file under the folder but the bookkeeping."""
        found = []
        folders = [self.directory]
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:  # emptied and removed by another process's eviction
                continue
            for entry in entries:
                if folder == self.directory and entry.name.startswith("."):
                    if entry.name in (_LOCK_NAME, _USAGE_NAME) or entry.is_dir():
                        continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except OSError:  # vanished between the listing and the stat
                    continue
                last_use = max(stat.st_atime_ns, stat.st_mtime_ns)
                found.append((last_use, _File(Path(entry.path), stat.st_size)))
        return found

    def _read_usage(self) -> int | None:
        try:
            with open(self.directory / _USAGE_NAME, "rb") as f:
                return int(f.read(_USAGE_WIDTH))
        except (OSError, ValueError):  # missing, or cut short by a crash: recount
            return None

    def _write_usage(self, total: int) -> None:
        # Overwritten in place, never truncated: ext4 flushes a file truncated and rewritten
        # when it is closed (auto_da_alloc), which made every click wait for the disk.
        try:
            fd = os.open(self.directory / _USAGE_NAME, os.O_WRONLY | os.O_CREAT, 0o666)
            try:
                os.write(fd, f"{total:0{_USAGE_WIDTH}d}".encode())  # at offset 0: just opened
            finally:
                os.close(fd)
        except OSError as exc:  # the next write recounts
            logger.warning("cache: cannot record the size of %s (%s)", self.directory, exc)
