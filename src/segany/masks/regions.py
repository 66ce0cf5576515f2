"""Removing small islands and filling small holes of a binary mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from segany.errors import ConfigError

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """(H, W) bool mask -> (H, W) bool mask without its small regions, and whether it changed.

    mode "holes" fills the 8-connected regions of unset pixels (holes, and pieces of the
    background) with fewer than `area_thresh` pixels; mode "islands" clears the 8-connected
    regions of set pixels that small, except that the largest island stays when all are small.
    An unchanged mask is returned as is (the same object). Same results as segment-anything's
    `remove_small_regions`.
    """
    if mode not in ("holes", "islands"):
        raise ConfigError(f"mode must be 'holes' or 'islands', got {mode!r}")
    mask = np.asarray(mask)
    filling_holes = mode == "holes"
    regions = ~mask.astype(bool) if filling_holes else mask.astype(bool, copy=False)
    labels, n_regions = ndimage.label(regions, structure=_EIGHT_CONNECTED)  # (H, W), 1..n
    sizes = np.bincount(labels.ravel(), minlength=n_regions + 1)[1:]  # (n,)
    small = sizes < area_thresh
    if not small.any():
        return mask, False

    # keep[label] says whether pixels with that label are set in the result; label 0 is the
    # complement of `regions`.
    keep = np.zeros(n_regions + 1, dtype=bool)
    if filling_holes:
        keep[0] = True
        keep[1:] = small
    else:
        keep[1:] = ~small
        if not keep.any():
            keep[_largest_region(labels, sizes)] = True
    return keep[labels], True


def _largest_region(labels: np.ndarray, sizes: np.ndarray) -> int:
    """Label of the largest region, ties broken as OpenCV's `connectedComponentsWithStats`.

    OpenCV labels 2x2 pixel blocks in raster order of blocks (BBDT and Spaghetti, Grana et
    al.), so it numbers regions by their first block, not their first pixel as scipy does; the
    reference keeps the lowest-numbered of equally large regions.
    """
    tied = np.flatnonzero(sizes == sizes.max()) + 1  # labels, ascending
    if len(tied) == 1:
        return int(tied[0])
    h, w = labels.shape
    rows, cols = np.indices((h, w))
    block = (rows // 2) * ((w + 1) // 2) + cols // 2  # (H, W) block raster index
    first_block = ndimage.minimum(block, labels, tied)  # (len(tied),)
    return int(tied[np.argmin(first_block)])
