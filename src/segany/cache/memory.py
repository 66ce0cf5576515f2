"""A least-recently-used map bounded in bytes, not entries: embeddings of different models
differ 16x in size (test_tiny 32 KiB, SAM 4 MiB), and images far more, so a count bound says
little about memory. The one LRU of segany's stores: the memory caches hold their values in it,
and the disk stores (`segany.cache.folder`) rank their files with it when they evict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


Value = TypeVar("Value", bound=_Sized)


class ByteLRU(Generic[Value]):
    """key -> value (a `CachedEmbedding`, a NumPy array: anything with `nbytes`), holding at
    most `max_bytes` in total.

    on_evict: called with (key, value) for each entry the bound pushes out (not for `pop`, nor
        for a replaced key, nor for a value refused as larger than the bound).
    Not thread-safe by itself: its owners (`EmbeddingCache`, `PixelCache`, ...) call it under a
    lock.
    """

    def __init__(
        self, max_bytes: int, on_evict: Callable[[str, Value], None] | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[str, Value] = OrderedDict()
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Value | None:
        """The entry for `key`, now the most recently used; None if absent."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: Value) -> bool:
        """Insert or replace `key`, then evict the least recently used entries until the total
        is within the bound. An entry larger than the whole bound is not kept at all (it would
        evict everything else and then itself): False then, else True."""
        self.pop(key)
        if value.nbytes > self.max_bytes:
            return False
        self._entries[key] = value
        self.nbytes += value.nbytes
        while self.nbytes > self.max_bytes:
            old_key, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes
            if self._on_evict is not None:
                self._on_evict(old_key, evicted)
        return True

    def pop(self, key: str) -> Value | None:
        """Forget `key` if present; return its value (None if absent)."""
        value = self._entries.pop(key, None)
        if value is not None:
            self.nbytes -= value.nbytes
        return value
