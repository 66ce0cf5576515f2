"""Area and tight box of an (H, W) NumPy mask: what `segany predict` reports, and the crop that
the outline and run-length encoders work on (a mask is usually far smaller than its image)."""

from __future__ import annotations

import numpy as np


def mask_area(mask: np.ndarray) -> int:
    """Number of foreground pixels of an (H, W) boolean mask."""
    return int(np.count_nonzero(mask))


def mask_bbox_xyxy(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1) around an (H, W) mask's pixels; None for an empty mask.

    Pixel frame: pixel (x, y) covers [x, x + 1) x [y, y + 1), so x1 and y1 are exclusive and
    the box is x1 - x0 pixels wide, the same frame as `--box` prompts.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if columns.size == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1
