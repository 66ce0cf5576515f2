"""Prompt point grids and the crop boxes of segment-anything's automatic mask generation."""

from __future__ import annotations

import numpy as np


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n * n, 2) float64 xy: cell centres of an n x n grid over [0, 1] x [0, 1], x fastest."""
    if n_per_side < 1:
        raise ValueError(f"n_per_side must be at least 1, got {n_per_side}")
    half_cell = 1 / (2 * n_per_side)
    side = np.linspace(half_cell, 1 - half_cell, n_per_side)  # (n,)
    xs, ys = np.meshgrid(side, side)  # (n, n) each, row i holds y = side[i]
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One point grid per crop layer 0..n_layers; layer i has n_per_side // scale**i per side
    (truncated), since its crops are 2**i times smaller on each side."""
    return [
        build_point_grid(int(n_per_side / scale_per_layer**layer)) for layer in range(n_layers + 1)
    ]


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes ([x0, y0, x1, y1] pixels, right/bottom exclusive) of an (H, W) image and
    the layer of each.

    Layer 0 is the whole image; layer i >= 1 tiles it with 2**i x 2**i crops that overlap by
    ``overlap_ratio`` of the short side scaled by 2 / 2**i, listed column by column (x0
    outer, y0 inner).
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        # Keep this float expression as it is: int() truncates it, so its rounding matters.
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = _crop_length(im_w, per_side, overlap)
        crop_h = _crop_length(im_h, per_side, overlap)
        starts_x = [i * (crop_w - overlap) for i in range(per_side)]
        starts_y = [i * (crop_h - overlap) for i in range(per_side)]
        for x0 in starts_x:
            for y0 in starts_y:
                boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
                layers.append(layer)
    return boxes, layers


def _crop_length(full: int, per_side: int, overlap: int) -> int:
    """Length of each of `per_side` crops overlapping by `overlap` that together cover `full`."""
    return -(-(full + overlap * (per_side - 1)) // per_side)  # ceiling division
