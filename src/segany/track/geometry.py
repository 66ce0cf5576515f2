"""Coordinate frames of the image-model tracker and pure functions on low-resolution masks.

Three pixel grids are in play, each with continuous coordinates whose origin is the top-left
pixel's corner (pixel (i, j) covers [j, j + 1) x [i, i + 1)):

- the frame: (H, W), where prompts are given and masks returned;
- the low-resolution grid: (lh, lw) = the decoder's mask logits (4x the embedding grid,
  256 x 256 for a 1024 px SAM or segany-tiny-v2 at 512 px), covering the padded input square;
  the frame occupies its top-left `valid` rows and columns;
- the flow frame: the grey frame optical flow runs on, the frame scaled to a long side of at
  most `flow_size` px.

OpenCV's routines use pixel-centre index coordinates (index = continuous - 0.5); the
conversions below say which they take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segany.transforms import preprocess_shape


@dataclass(frozen=True)
class Grid:
    """The low-resolution grid of a model on frames of size `frame` (H, W).

    image_size: the model's input side S; low: (lh, lw) of its low-resolution logits.
    """

    frame: tuple[int, int]
    image_size: int
    low: tuple[int, int]

    @property
    def input_size(self) -> tuple[int, int]:
        """(h', w'): the frame resized so that its long side is S."""
        return preprocess_shape(self.frame[0], self.frame[1], self.image_size)

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): low-resolution pixels per frame pixel along x and y."""
        h_in, w_in = self.input_size
        return (
            w_in / self.frame[1] * self.low[1] / self.image_size,
            h_in / self.frame[0] * self.low[0] / self.image_size,
        )

    @property
    def valid(self) -> tuple[int, int]:
        """(rows, cols) of the low-resolution grid that cover the frame (the rest is padding)."""
        h_in, w_in = self.input_size
        return (
            min(self.low[0], math.ceil(h_in * self.low[0] / self.image_size)),
            min(self.low[1], math.ceil(w_in * self.low[1] / self.image_size)),
        )

    def low_to_input(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) continuous low-resolution xy -> the model-input frame (S px square)."""
        return np.asarray(xy, dtype=np.float64) * (self.image_size / self.low[1])

    def frame_to_low(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) continuous frame xy -> continuous low-resolution xy."""
        return np.asarray(xy, dtype=np.float64) * np.array(self.scale)

    def valid_mask(self) -> np.ndarray:
        """(lh, lw) bool: the cells that cover the frame."""
        out = np.zeros(self.low, dtype=bool)
        rows, cols = self.valid
        out[:rows, :cols] = True
        return out


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(h, w) bool -> (4,) float64 continuous x0, y0, x1, y1 of its bounding box, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def expand_box(box: np.ndarray, margin: float, pad: float, limit: tuple[int, int]) -> np.ndarray:
    """(4,) x0, y0, x1, y1 grown by `margin` x its size plus `pad` px on every side, clipped to
    the (rows, cols) `limit`."""
    x0, y0, x1, y1 = box
    dx = margin * (x1 - x0) + pad
    dy = margin * (y1 - y0) + pad
    return np.array(
        [max(x0 - dx, 0.0), max(y0 - dy, 0.0), min(x1 + dx, limit[1]), min(y1 + dy, limit[0])]
    )


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two same-shape bool masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def interior_points(mask: np.ndarray, count: int, spacing: float) -> np.ndarray:
    """Up to `count` (x, y) continuous cell centres of `mask` (h, w) bool, deepest first (by
    the distance to the background), each at least `spacing` cells from those before:
    the most reliable positive clicks for a mask. (0, 2) for an empty mask."""
    if count <= 0 or not mask.any():
        return np.zeros((0, 2))
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(mask)
    order = np.argsort(-depth[rows, cols], kind="stable")
    chosen: list[tuple[float, float]] = []
    for k in order[: 50 * count]:
        x, y = cols[k] + 0.5, rows[k] + 0.5
        if all((x - cx) ** 2 + (y - cy) ** 2 >= spacing**2 for cx, cy in chosen):
            chosen.append((x, y))
            if len(chosen) == count:
                break
    return np.array(chosen, dtype=np.float64).reshape(-1, 2)


def pseudo_logits(mask: np.ndarray, strength: float = 8.0) -> np.ndarray:
    """(h, w) bool -> (h, w) float32 logits (+strength inside, -strength outside, a ramp of
    a few cells across the edge): a mask prompt made from a mask without its logits."""
    signed = np.where(mask, strength, -strength).astype(np.float32)
    return ndimage.uniform_filter(signed, size=3, mode="nearest")


def deepest(points: np.ndarray, mask: np.ndarray, count: int, spacing: float) -> np.ndarray:
    """Of (N, 2) continuous xy `points` on `mask`'s grid, up to `count` inside `mask`, deepest
    first (farthest from its edge), each at least `spacing` cells from those before."""
    if count <= 0 or len(points) == 0:
        return np.zeros((0, 2))
    height, width = mask.shape
    cols = np.clip(points[:, 0].astype(int), 0, width - 1)
    rows = np.clip(points[:, 1].astype(int), 0, height - 1)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][rows, cols]
    chosen: list[np.ndarray] = []
    for k in np.argsort(-depth, kind="stable"):
        if depth[k] <= 0:
            break
        if all(np.sum((points[k] - c) ** 2) >= spacing**2 for c in chosen):
            chosen.append(points[k])
            if len(chosen) == count:
                break
    return np.array(chosen, dtype=np.float64).reshape(-1, 2)
