"""Pure metric functions of interactive segmentation: IoU, a mask's interior point, and the
corrective click a simulated user makes on an error region.

The click protocol is the one interactive-segmentation papers report NoC with (e.g. RITM,
Sofiiuk et al.; SAM's point-based evaluation): click at the point of the largest error region
that is farthest from its border.

All masks are (H, W) bool in the image frame; points are (x, y) integer pixels in that frame.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 8-connectivity: pixels touching at a corner belong to one region.
_EIGHT = np.ones((3, 3), dtype=bool)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two (H, W) masks; 1.0 when both are empty (they agree)."""
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"masks of different shapes: {pred.shape} and {gt.shape}")
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & gt)) / union


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of a non-empty (H, W) mask farthest from the mask's border.

    The image edge counts as border (the mask is zero-padded before the Euclidean distance
    transform). Among equally far pixels, the one nearest their mean position wins, then the
    first in row-major order: a w x h rectangle gives its centre (rounded up-left when a side is
    even), not the first pixel of its middle row. Raises `ValueError` for an empty mask.
    """
    mask = mask.astype(bool, copy=False)
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("an empty mask has no interior point")
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # (H, W)
    ys, xs = np.nonzero(distance == distance.max())  # row-major order
    # Squared distances of integer offsets from a mean are exact enough that equal ones compare
    # equal; argmin then keeps the first in row-major order.
    spread = (ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2
    best = int(np.argmin(spread))
    return int(xs[best]), int(ys[best])


def click_from_error(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int] | None:
    """The next simulated click: (x, y, label) at the interior point of the largest
    8-connected error region, or None when `pred` equals `gt`.

    A false-negative region (in `gt`, missed by `pred`) gives a positive click (label 1), a
    false-positive region (in `pred`, not in `gt`) a negative one (label 0). When the largest
    false-negative and false-positive regions are equally large, the positive click wins.
    """
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"masks of different shapes: {pred.shape} and {gt.shape}")
    best: tuple[int, np.ndarray, int] | None = None  # (area, region, label)
    for errors, label in ((gt & ~pred, 1), (pred & ~gt, 0)):
        region = _largest_region(errors)
        if region is None:
            continue
        area = int(np.count_nonzero(region))
        if best is None or area > best[0]:
            best = (area, region, label)
    if best is None:
        return None
    x, y = interior_point(best[1])
    return x, y, best[2]


def _largest_region(mask: np.ndarray) -> np.ndarray | None:
    """(H, W) bool, the largest 8-connected region of `mask` (the lowest-numbered one, i.e.
    first in row-major order, among equally large), or None if the mask is empty."""
    labels, count = ndimage.label(mask, structure=_EIGHT)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]  # (count,) region areas; label 0 is background
    return labels == int(np.argmax(sizes)) + 1
