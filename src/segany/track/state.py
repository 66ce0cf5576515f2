"""What the image-model tracker keeps per object: the previous frame's state (its logits, a
confidence, an appearance vector) and a bounded history of recent masks, compressed."""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass
class ObjectState:
    """One object after one frame, on the low-resolution grid (see `segany.track.geometry`).

    logits: (lh, lw) float32 of its last good mask (the next frame's mask prompt; kept, not
    moved, while the object is lost); confidence: in [0, 1] on that frame; appearance: unit
    (C,) float32 mean embedding under its good masks, or None; lost: frames lost in a row
    (0 while tracked); area: cells in its last good mask.
    """

    logits: np.ndarray
    confidence: float
    appearance: np.ndarray | None
    lost: int = 0
    area: float = 0.0

    @property
    def mask(self) -> np.ndarray:
        """(lh, lw) bool: the last good mask."""
        return self.logits > 0

    def nbytes(self) -> int:
        """Bytes held by the state's arrays."""
        extra = 0 if self.appearance is None else self.appearance.nbytes
        return self.logits.nbytes + extra


class MaskHistory:
    """The latest `capacity` frames' (lh, lw) bool masks of one object with their scores,
    each stored bit-packed and deflated (a few hundred bytes for a compact object)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, tuple[bytes, tuple[int, int], float]] = OrderedDict()

    def put(self, frame: int, mask: np.ndarray, score: float) -> None:
        if self.capacity == 0:
            return
        packed = zlib.compress(np.packbits(mask, axis=None).tobytes(), 1)
        self._items[frame] = (packed, mask.shape, float(score))
        self._items.move_to_end(frame)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, frame: int) -> tuple[np.ndarray, float] | None:
        """(mask (lh, lw) bool, score) of `frame`, or None if not kept."""
        item = self._items.get(frame)
        if item is None:
            return None
        packed, shape, score = item
        bits = np.frombuffer(zlib.decompress(packed), dtype=np.uint8)
        mask = np.unpackbits(bits, count=shape[0] * shape[1]).astype(bool).reshape(shape)
        return mask, score

    def __len__(self) -> int:
        return len(self._items)

    def nbytes(self) -> int:
        """Bytes of the stored masks."""
        return sum(len(packed) for packed, _, _ in self._items.values())
