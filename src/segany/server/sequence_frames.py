"""A sequence's frames as image files for the browser (`GET /api/sequences/{id}/frames/{n}`):
decoded from a sequence opened for viewing (its own decoder, apart from the tracker's, so that
scrubbing never waits for propagation) and encoded as JPEG or PNG, the answers kept in a cache
bounded in bytes. At most `open_limit` sequences are held open; the least recently used closes.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable

from PIL import Image

from segany.sequences.base import FrameSequence

FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 90


class _Opened:
    """A sequence open for viewing, with the lock its decoder needs (one read at a time)."""

    def __init__(self, sequence: FrameSequence) -> None:
        self.sequence = sequence
        self.lock = threading.Lock()


class FrameImages:
    """open(key) -> FrameSequence opens a sequence by its key (the sequence id)."""

    def __init__(
        self,
        open_sequence: Callable[[str], FrameSequence],
        cache_bytes: int = 64 * 2**20,
        open_limit: int = 4,
    ) -> None:
        self._open_sequence = open_sequence
        self.cache_bytes = cache_bytes
        self.open_limit = open_limit
        self._lock = threading.Lock()
        self._opened: OrderedDict[str, _Opened] = OrderedDict()
        self._cache: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self._cached_bytes = 0

    def frame(self, key: str, index: int, fmt: str) -> tuple[bytes, str]:
        """Frame `index` of sequence `key` as (file bytes, media type); `fmt` "jpeg" or "png".
        The index is checked by the sequence (`ImageError` past its end)."""
        media_type = FORMATS[fmt]
        cache_key = (key, index, fmt)
        with self._lock:
            data = self._cache.get(cache_key)
            if data is not None:
                self._cache.move_to_end(cache_key)
                return data, media_type
        opened = self._get(key)
        with opened.lock:
            pixels = opened.sequence.rgb(index)  # (H, W, 3) uint8
        data = encode_frame(pixels, fmt)
        self._remember(cache_key, data)
        return data, media_type

    def rgb(self, key: str, index: int):
        """Frame `index` of sequence `key`: (H, W, 3) uint8 (for exports that hold pictures)."""
        opened = self._get(key)
        with opened.lock:
            return opened.sequence.rgb(index)

    def forget(self, key: str) -> None:
        """Close the sequence and drop its cached frames (it was deleted)."""
        with self._lock:
            opened = self._opened.pop(key, None)
            for cache_key in [k for k in self._cache if k[0] == key]:
                self._cached_bytes -= len(self._cache.pop(cache_key))
        if opened is not None:
            with opened.lock:
                opened.sequence.close()

    def close(self) -> None:
        for key in list(self._opened):
            self.forget(key)

    def _get(self, key: str) -> _Opened:
        with self._lock:
            opened = self._opened.get(key)
            if opened is not None:
                self._opened.move_to_end(key)
                return opened
        sequence = self._open_sequence(key)  # outside the lock: opening may take a while
        closing: list[_Opened] = []
        with self._lock:
            opened = self._opened.get(key)
            if opened is None:
                opened = self._opened[key] = _Opened(sequence)
            else:
                closing.append(_Opened(sequence))  # another request opened it meanwhile
            while len(self._opened) > self.open_limit:
                closing.append(self._opened.popitem(last=False)[1])
        for old in closing:
            with old.lock:
                old.sequence.close()
        return opened

    def _remember(self, cache_key: tuple[str, int, str], data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        with self._lock:
            if cache_key in self._cache:
                return
            self._cache[cache_key] = data
            self._cached_bytes += len(data)
            while self._cached_bytes > self.cache_bytes:
                self._cached_bytes -= len(self._cache.popitem(last=False)[1])


def encode_frame(pixels, fmt: str) -> bytes:
    """(H, W, 3) uint8 RGB -> the bytes of a JPEG (quality 90) or PNG file."""
    buffer = io.BytesIO()
    picture = Image.fromarray(pixels)
    if fmt == "jpeg":
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
