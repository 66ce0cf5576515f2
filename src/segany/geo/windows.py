"""Window arithmetic on a raster's pixel grid, done before anything is read: the window SAM
sees around the prompts, and the shape a window is decimated to so that it fits a side."""

from __future__ import annotations

import math

import numpy as np


def decimated_shape(width: int, height: int, side: int) -> tuple[int, int]:
    """(h, w): a `width` x `height` window shrunk, keeping its aspect, until neither side is
    over `side` pixels; its own size when it fits already."""
    scale = max(width, height) / side
    if scale <= 1:
        return height, width
    return max(1, round(height / scale)), max(1, round(width / scale))


def pixel_window(
    cols_rows: np.ndarray, width: int, height: int, side: int
) -> tuple[int, int, int, int]:
    """The (col_off, row_off, width, height) window SAM sees around (N, 2) (col, row) pixel
    prompts: the whole raster when it is at most `side` pixels both ways; otherwise, per axis, a
    span of `side` (or the prompts' extent plus a quarter `side` of margin each way, if larger)
    centred on the prompts and moved inside the raster."""
    window = []
    for axis, size in ((0, width), (1, height)):
        low, high = float(cols_rows[:, axis].min()), float(cols_rows[:, axis].max())
        length = min(size, max(side, math.ceil(high - low) + side // 2))
        start = round((low + high) / 2 - length / 2)
        window.append((min(max(start, 0), size - length), length))
    (col_off, win_w), (row_off, win_h) = window
    return col_off, row_off, win_w, win_h
