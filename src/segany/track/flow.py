"""Sparse optical flow for the image-model tracker: points inside an object's mask followed
from one frame to the next with pyramidal Lucas-Kanade (OpenCV `calcOpticalFlowPyrLK`), kept
only when tracking them back lands where they started (the forward-backward check of Kalal et
al. 2010), and the object's motion as a similarity transform fitted to the survivors (SAM-PT,
Rajic et al. 2023, follows points the same way).

All coordinates here are pixel-centre index coordinates of the flow frame (OpenCV's).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LK_PARAMS = {
    "winSize": (21, 21),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}


def grey_frame(rgb: np.ndarray, flow_size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (h, w) uint8 grey, scaled so that its long side is at most
    `flow_size` px (area averaging)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    scale = flow_size / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def sample_points(grey: np.ndarray, mask: np.ndarray, max_points: int) -> np.ndarray:
    """Up to `max_points` (N, 2) float32 xy points worth following inside `mask` ((h, w) bool
    on the flow frame): corners (Shi-Tomasi) of the slightly eroded mask first, then a grid
    over it where it has too few corners (smooth objects)."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    if not inner.any():
        inner = mask.astype(np.uint8)
    if not inner.any():
        return np.zeros((0, 2), np.float32)
    corners = cv2.goodFeaturesToTrack(
        grey, maxCorners=max_points, qualityLevel=0.01, minDistance=4, mask=inner, blockSize=5
    )
    points = np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2)
    missing = max_points // 2 - len(points)
    if missing > 0:
        rows, cols = np.nonzero(inner)
        step = max(1, len(rows) // missing)
        grid = np.stack([cols[::step], rows[::step]], axis=1)[:missing].astype(np.float32)
        points = np.concatenate([points, grid])
    return points.astype(np.float32)


@dataclass
class Motion:
    """An object's motion between two flow frames.

    affine: (2, 3) float64 index-coordinate transform from the earlier frame to the later one;
    src / dst: (N, 2) float32 the points that passed the forward-backward check, before and
    after; inliers: (N,) bool those the fitted transform explains.
    """

    affine: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    inliers: np.ndarray


def track_points(
    prev: np.ndarray, cur: np.ndarray, points: np.ndarray, fb_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Follow (N, 2) float32 `points` from grey frame `prev` to `cur` -> (src, dst) of the
    points tracked both ways with a forward-backward error below `fb_threshold` px."""
    if len(points) == 0:
        return points, points
    p0 = points.reshape(-1, 1, 2)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **_LK_PARAMS)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **_LK_PARAMS)
    error = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (error < fb_threshold)
    return points[ok], p1.reshape(-1, 2)[ok]


def fit_motion(src: np.ndarray, dst: np.ndarray, max_scale_change: float = 1.3) -> Motion:
    """A similarity transform (rotation, uniform scale, translation) from >= 3 point pairs
    (RANSAC), a translation by the median displacement from 1 or 2, the identity from none.
    A fitted scale change beyond `max_scale_change` (or its inverse) falls back to the
    median translation: a few points on a deforming object do not make it grow."""
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    count = len(src)
    if count == 0:
        return Motion(identity, src, dst, np.zeros(0, bool))
    shift = np.median(dst - src, axis=0)
    translation = identity.copy()
    translation[:, 2] = shift
    if count >= 3:
        affine, inliers = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0
        )
        if affine is not None:
            scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
            if 1 / max_scale_change <= scale <= max_scale_change:
                return Motion(affine.astype(np.float64), src, dst, inliers.ravel() == 1)
    residual = np.linalg.norm(dst - src - shift, axis=1)
    return Motion(translation, src, dst, residual < 2.0)


def rescale_affine(affine: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """A (2, 3) index-coordinate transform on grid P -> the same motion on grid Q whose
    continuous coordinates are P's times `scale` (sx, sy)."""
    sx, sy = scale
    # index of Q = scale * (index of P + 0.5) - 0.5
    to_q = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    full = np.vstack([affine, [0, 0, 1]])
    return (to_q @ full @ np.linalg.inv(to_q))[:2]


def warp(array: np.ndarray, affine: np.ndarray, border: float) -> np.ndarray:
    """(h, w) float32 `array` moved by `affine` (its own index coordinates), bilinear; cells
    coming from outside get `border`."""
    height, width = array.shape
    return cv2.warpAffine(
        array,
        affine,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
