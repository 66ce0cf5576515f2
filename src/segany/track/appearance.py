"""An object's appearance for re-detection: the mean of the image embedding under its mask
(a unit vector), and where in a frame the embedding looks like it.

Track-Anything (Yang et al. 2023) re-finds a lost object from a memory of its appearance;
here the memory is one vector per object, so it costs the same whatever the video's length.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_descriptor(embedding: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The unit (C,) float32 mean of `embedding` ((C, eh, ew), the padded input square)
    weighted by `mask` ((lh, lw) bool on the low-resolution grid, the same square), or None
    for an empty mask."""
    _, eh, ew = embedding.shape
    weights = cv2.resize(mask.astype(np.float32), (ew, eh), interpolation=cv2.INTER_AREA)
    total = float(weights.sum())
    if total <= 0:
        return None
    vector = np.tensordot(embedding, weights, axes=([1, 2], [0, 1])) / total  # (C,)
    return unit(vector)


def unit(vector: np.ndarray) -> np.ndarray | None:
    """`vector` scaled to length 1 as float32, None for a zero vector."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else None


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine similarity of two unit vectors (0 when either is missing)."""
    if a is None or b is None:
        return 0.0
    return float(np.dot(a, b))


def similarity_map(embedding: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(eh, ew) float32 cosine similarity of each embedding cell ((C, eh, ew)) to the unit
    (C,) `vector`."""
    norms = np.linalg.norm(embedding, axis=0) + 1e-6  # (eh, ew)
    return (np.tensordot(vector, embedding, axes=(0, 0)) / norms).astype(np.float32)


def update(old: np.ndarray | None, new: np.ndarray | None, momentum: float) -> np.ndarray | None:
    """Running appearance: `momentum` of the old vector, the rest the new one, unit length."""
    if old is None:
        return new
    if new is None:
        return old
    return unit(momentum * old + (1.0 - momentum) * new)
