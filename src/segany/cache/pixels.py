"""Decoded images kept in memory by key, for the work that needs pixels after the embedding
came from the cache (edge refinement of a click's masks: `SamPredictor`'s `edge_refinement`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from segany.cache.memory import ByteLRU

MiB = 1 << 20


class PixelCache:
    """key -> (H, W, 3) uint8 image, least recently used first out beyond `max_bytes`.

    Thread-safe; a load runs outside the lock (two threads may both decode an image the first
    time; both get equal pixels).
    """

    def __init__(self, max_bytes: int = 256 * MiB) -> None:
        self._lru: ByteLRU[np.ndarray] = ByteLRU(max_bytes)
        self._lock = threading.Lock()

    def put(self, key: str, pixels: np.ndarray) -> None:
        with self._lock:
            self._lru.put(key, pixels)

    def discard(self, key: str) -> None:
        """Forget `key`'s pixels (its image was deleted)."""
        with self._lock:
            self._lru.pop(key)

    def get_or_load(self, key: str, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The pixels under `key`, from memory or from `load()` (then kept)."""
        with self._lock:
            pixels = self._lru.get(key)
        if pixels is None:
            pixels = load()
            self.put(key, pixels)
        return pixels
