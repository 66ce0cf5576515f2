"""Single-flight locks: one computation per key at a time, among the threads of a process
(`KeyedLocks`) and among processes sharing a cache folder (`file_lock`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; processes may then compute a key twice (still correct)
    fcntl = None

logger = logging.getLogger(__name__)


class Flight:
    """The threads working on one key: a lock taken in turn, and the result the first one
    leaves for the others (so they get it even when the cache could not keep it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # holding or waiting; guarded by KeyedLocks._guard
        self.result: Any = None


class KeyedLocks:
    """One `Flight` per key, made on first use and dropped when no thread holds or waits for
    it, so the table stays as small as the number of keys in flight."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._flights: dict[str, Flight] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[Flight]:
        """Block until no other thread holds `key`; yield its `Flight` for the `with` body."""
        with self._guard:
            flight = self._flights.setdefault(key, Flight())
            flight.users += 1
        try:
            with flight.lock:
                yield flight
        finally:
            with self._guard:
                flight.users -= 1
                if flight.users == 0:
                    del self._flights[key]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (`flock`) on file `path` for the `with` body.

    The file is created if missing and left in place afterwards: removing a lock file while
    another process waits on it would let a third lock a fresh file beside it. The kernel drops
    the lock when its holder dies, so a killed worker never leaves a key locked. Where there is
    no fcntl (Windows) or the file cannot be opened, the body runs unlocked (logged).
    """
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        logger.warning("cannot open lock file %s (%s); computing without it", path, exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # also releases the lock
