"""`EmbeddingCache`: image embeddings in a memory LRU over an optional disk store, with one
computation per key however many threads and processes ask for it at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from segany.cache.disk import DiskStore
from segany.cache.embedding import CachedEmbedding
from segany.cache.keys import check_key
from segany.cache.locks import KeyedLocks, file_lock
from segany.cache.memory import ByteLRU
from segany.errors import ConfigError

GiB = 1 << 30


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was made. Each `get` or `get_or_compute` call is one hit (from
    memory or disk) or one miss; `disk_hits` is the part of `hits` read from disk."""

    hits: int
    misses: int
    disk_hits: int
    memory_bytes: int  # tensor bytes held in memory
    entries: int  # entries held in memory


class EmbeddingCache:
    """Image embeddings by key (`image_key`): memory first, then `directory` if given.

    max_memory_bytes: bound on the tensor bytes kept in memory, least recently used evicted
        first (1 GiB holds 256 SAM embeddings); 0 keeps nothing in memory. An entry larger than
        the bound skips memory but still goes to disk.
    directory: created if missing; may be shared by several processes (server workers). A bad
        one (a file, not writable) raises `ConfigError`.
    max_disk_bytes: bound on the files in `directory`, least recently used deleted first
        (`BoundedFolder`; it holds across the processes sharing the folder); None: no bound.
    All methods are thread-safe. Returned embeddings are shared: treat them as read-only.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        max_memory_bytes: int = GiB,
        max_disk_bytes: int | None = None,
    ) -> None:
        if not isinstance(max_memory_bytes, int) or max_memory_bytes < 0:
            raise ConfigError(
                f"max_memory_bytes must be a byte count >= 0, got {max_memory_bytes!r}"
            )
        self._disk = None if directory is None else DiskStore(directory, max_disk_bytes)
        self._memory = ByteLRU(max_memory_bytes)
        self._lock = threading.Lock()  # guards _memory and the counters
        self._flights = KeyedLocks()
        self._hits = self._misses = self._disk_hits = 0

    @property
    def directory(self) -> Path | None:
        return None if self._disk is None else self._disk.directory

    @property
    def max_bytes(self) -> int | None:
        """The most embedding bytes it keeps: the disk bound when it has a folder (None: no
        bound), else the memory bound."""
        return self._memory.max_bytes if self._disk is None else self._disk.folder.max_bytes

    def get(self, key: str) -> CachedEmbedding | None:
        """The embedding for `key` from memory or disk (then kept in memory), or None."""
        value, from_disk = self._lookup(key)
        self._count(value is not None, from_disk)
        return value

    def put(self, key: str, value: CachedEmbedding) -> None:
        """Store `value` under `key` in memory and on disk. A failed disk write (disk full) is
        logged, not raised: the cache only saves work, it must not fail the request."""
        check_key(key)
        if not isinstance(value, CachedEmbedding):
            raise TypeError(f"put takes a CachedEmbedding, got {type(value).__name__}")
        with self._lock:
            self._memory.put(key, value)
        if self._disk is not None:
            self._disk.write(key, value)

    def discard(self, key: str) -> None:
        """Forget `key` in memory and on disk (its image was deleted). A computation of it
        running at the same time may store it again."""
        check_key(key)
        with self._lock:
            self._memory.pop(key)
        if self._disk is not None:
            self._disk.remove(key)

    def contains(self, key: str) -> bool:
        """Whether `key` is in memory or has a file on disk (not read: `get` may still find
        the file corrupt)."""
        check_key(key)
        with self._lock:
            if key in self._memory:
                return True
        return self._disk is not None and self._disk.exists(key)

    def get_or_compute(
        self, key: str, compute: Callable[[], CachedEmbedding]
    ) -> tuple[CachedEmbedding, bool]:
        """The embedding for `key`, computed with `compute()` and stored if absent.

        Returns (embedding, cached): cached is False only for the call that ran `compute`.
        Concurrent calls for one key run `compute` once: threads of this process wait on a
        per-key lock and share the first one's result; processes sharing `directory` wait on a
        file lock (`DiskStore.lock_path`, POSIX only) and then read the stored file.
        If `compute` raises, the error reaches its caller and the next waiter tries again.
        """
        value, from_disk = self._lookup(key)
        cached = value is not None
        if not cached:
            value, cached, from_disk = self._compute_once(key, compute)
        self._count(cached, from_disk)
        return value, cached

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                disk_hits=self._disk_hits,
                memory_bytes=self._memory.nbytes,
                entries=len(self._memory),
            )

    def _lookup(self, key: str) -> tuple[CachedEmbedding | None, bool]:
        """(embedding or None, whether it came from disk), without counting."""
        check_key(key)
        with self._lock:
            value = self._memory.get(key)
        if value is not None or self._disk is None:
            return value, False
        value = self._disk.read(key)  # outside the lock: a disk read must not stall memory hits
        if value is None:
            return None, False
        with self._lock:
            self._memory.put(key, value)
        return value, True

    def _count(self, hit: bool, from_disk: bool) -> None:
        with self._lock:
            if hit:
                self._hits += 1
                self._disk_hits += from_disk
            else:
                self._misses += 1

    def _compute_once(
        self, key: str, compute: Callable[[], CachedEmbedding]
    ) -> tuple[CachedEmbedding, bool, bool]:
        """(embedding, cached, from_disk) after waiting for this key's other computations."""
        with self._flights.hold(key) as flight:
            if flight.result is not None:  # a thread of this process computed it meanwhile
                return flight.result, True, False
            with self._process_lock(key):
                # Another process may have stored it while this one waited for the file lock.
                value, from_disk = self._lookup(key)
                if value is not None:
                    return value, True, from_disk
                value = compute()
                if not isinstance(value, CachedEmbedding):
                    raise TypeError(
                        f"compute must return a CachedEmbedding, got {type(value).__name__}"
                    )
                # Stored before the file lock is released, so waiting processes find it.
                self.put(key, value)
            flight.result = value
            return value, False, False

    def _process_lock(self, key: str) -> AbstractContextManager:
        if self._disk is None:
            return nullcontext()
        return file_lock(self._disk.lock_path(key))
