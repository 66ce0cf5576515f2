"""No pixel in two objects' masks (a pure function)."""

from __future__ import annotations

import numpy as np


def exclusive(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(K, H, W) bool masks of K objects -> (K, H, W) bool where each pixel claimed by
    several objects stays with the one scoring highest there. scores: (K,) per object or
    (K, H, W) per pixel (e.g. logits: the object the model is surest of at that pixel wins);
    ties go to the first object."""
    if masks.shape[0] < 2:
        return masks
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        scores = scores[:, None, None]
    claimed = np.where(masks, np.broadcast_to(scores, masks.shape), -np.inf)
    winner = np.argmax(claimed, axis=0)  # (H, W)
    return masks & (winner[None] == np.arange(masks.shape[0])[:, None, None])
