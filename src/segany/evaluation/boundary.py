"""Boundary F-score: how closely a predicted mask's outline follows the ground truth's, within a
pixel tolerance. The contour accuracy F of the DAVIS benchmark (Perazzi et al., 2016), after
Martin et al.'s boundary-matching benchmark (2004): region IoU barely notices a boundary one
or two pixels off on a large mask, this score does.

Definitions, for (H, W) bool masks in the image frame:
  - boundary pixels of a mask: its pixels with a 4-neighbour outside it. The image edge is not
    a boundary (a mask cut by the frame has no outline there, in either mask);
  - precision: the share of predicted boundary pixels within `tolerance` px (Euclidean) of a
    ground-truth boundary pixel; recall: the share of ground-truth boundary pixels within
    `tolerance` px of a predicted one;
  - F = 2 P R / (P + R), 0 when both are 0. When neither mask has a boundary (both empty, or
    both the whole image) F = 1; when only one has, F = 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

DEFAULT_TOLERANCE = 2.0  # px, the tolerance the yardstick reports (issue 13)


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W) mask with a 4-neighbour outside it (the image edge
    does not count: the mask is edge-padded)."""
    mask = mask.astype(bool, copy=False)
    padded = np.pad(mask, 1, mode="edge")  # (H + 2, W + 2)
    inside = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )  # (H, W): all four neighbours in the mask
    return mask & ~inside


def boundary_fscore(
    pred: np.ndarray, gt: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> float:
    """The boundary F-score of an (H, W) predicted mask against an (H, W) ground-truth mask,
    boundary pixels matching within `tolerance` px (see the module docstring)."""
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    if pred.shape != gt.shape:
        raise ValueError(f"masks of different shapes: {pred.shape} and {gt.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 px, got {tolerance}")
    window = _window(pred | gt, math.ceil(tolerance) + 1)
    if window is None:
        return 1.0  # both empty: they agree
    pred_edge, gt_edge = boundary_pixels(pred[window]), boundary_pixels(gt[window])
    # The window reaches past every mask pixel wherever it does not end at the image edge, so
    # the outlines found in it are the full-image outlines.
    if not pred_edge.any() or not gt_edge.any():
        return float(pred_edge.any() == gt_edge.any())
    # Distance from each pixel to the nearest boundary pixel of the other mask (all of which
    # lie in the window).
    to_gt = ndimage.distance_transform_edt(~gt_edge)
    to_pred = ndimage.distance_transform_edt(~pred_edge)
    precision = float(np.mean(to_gt[pred_edge] <= tolerance))
    recall = float(np.mean(to_pred[gt_edge] <= tolerance))
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Row and column slices of the bounding box of `mask` grown by `margin` px (within the
    image), or None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    height, width = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )
