"""Run-length encoding of binary masks, in COCO's uncompressed and compressed forms.

An uncompressed RLE is ``{"size": [H, W], "counts": [int, ...]}``: the lengths of the alternating
runs of 0s and 1s of the (H, W) mask read in column-major (Fortran) order, beginning with a run
of 0s, so ``counts[0] == 0`` when the first pixel is set. It is what pycocotools' `frPyObjects`
reads and what segment-anything's `mask_to_rle_pytorch` writes; the compressed form is
pycocotools' own (``counts`` a str).
"""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from segany.errors import ConfigError


def masks_to_rle(
    masks: torch.Tensor,
    offset: tuple[int, int] = (0, 0),
    full_size: tuple[int, int] | None = None,
) -> list[dict]:
    """(N, h, w) bool masks -> N uncompressed RLEs, on any device.

    With ``offset=(x0, y0)`` and ``full_size=(H, W)`` each mask is a crop whose top-left pixel
    sits at column x0, row y0 of an H x W image that is zero elsewhere, and the RLE (``size``
    [H, W]) is that of the full image. The full image is never built: runs are found in the
    crop and their ends moved to the full-frame index (x + x0) * H + (y + y0). Non-bool masks
    count nonzero as set. One `nonzero` for the whole batch; Python only splits the result.
    """
    if masks.ndim != 3:
        raise ConfigError(f"masks must be (N, h, w), got shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    x0, y0 = (int(v) for v in offset)
    full_h, full_w = (h, w) if full_size is None else (int(v) for v in full_size)
    if x0 < 0 or y0 < 0 or x0 + w > full_w or y0 + h > full_h:
        raise ConfigError(
            f"a ({h}, {w}) crop at offset (x0, y0)=({x0}, {y0}) does not fit in an image of "
            f"size ({full_h}, {full_w}); pass full_size=(H, W) of the uncropped image"
        )
    if masks.dtype != torch.bool:
        masks = masks != 0

    # Runs are found along "lines" of the column-major image, each padded with a zero at
    # both ends so that every run starts and ends inside its line. When the crop spans the
    # image's full height its columns are contiguous in the image and runs flow from one into
    # the next, so the whole crop is one line; otherwise every column is a line of its own.
    lines, length = (1, w * h) if h == full_h else (w, h)
    padded = masks.new_zeros((n, lines, length + 2))
    padded[:, :, 1:-1].view(n, w, h).copy_(masks.transpose(1, 2))
    edges = padded[:, :, 1:] ^ padded[:, :, :-1]  # (N, lines, length + 1): run starts and ends
    mask_id, line, step = edges.nonzero(as_tuple=True)  # (T,) each, sorted
    # Full-frame column-major index of each edge (y0 is 0 when the crop is a single line).
    position = (x0 + line) * full_h + (y0 + step)  # (T,), ascending within each mask

    # Counts are the gaps between consecutive edges of a mask, starting from 0, then the
    # tail from its last edge to the end, which is dropped when empty.
    bounds = torch.searchsorted(mask_id, torch.arange(n + 1, device=mask_id.device))  # (N + 1,)
    begin, end = bounds[:-1], bounds[1:]
    hit = end > begin  # (N,) masks with any set pixel
    gaps = position.diff(prepend=position.new_zeros(1))
    gaps[begin[hit]] = position[begin[hit]]
    tails = torch.full((n,), full_h * full_w, dtype=torch.int64, device=masks.device)
    tails[hit] -= position[end[hit] - 1]

    gaps_list, bounds_list, tails_list = gaps.tolist(), bounds.tolist(), tails.tolist()
    rles = []
    for i, tail in enumerate(tails_list):
        counts = gaps_list[bounds_list[i] : bounds_list[i + 1]]
        if tail > 0 or not counts:
            counts.append(tail)
        rles.append({"size": [full_h, full_w], "counts": counts})
    return rles


def rle_to_mask(rle: dict) -> np.ndarray:
    """Uncompressed RLE -> (H, W) bool mask (a Fortran-ordered view, like pycocotools')."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ConfigError(f"RLE counts sum to {int(counts.sum())}, not H * W = {h * w}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, counts)  # (H * W,) column-major
    return flat.reshape(w, h).T


def rle_area(rle: dict) -> int:
    """Number of set pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def rle_to_box(rle: dict) -> list[int]:
    """Uncompressed RLE -> [x1, y1, x2, y2] pixel box, inclusive (x2 is the last set column).

    [0, 0, 0, 0] for an empty mask, as `masks_to_boxes`. Read off the runs, without decoding.
    """
    h = rle["size"][0]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    ends = np.cumsum(counts)
    lengths = counts[1::2]  # runs of 1s
    starts = ends[1::2] - lengths
    starts, lengths = starts[lengths > 0], lengths[lengths > 0]
    if len(starts) == 0:
        return [0, 0, 0, 0]
    lasts = starts + lengths - 1  # column-major index of each run's last pixel
    first_col, last_col = starts // h, lasts // h
    # A run that wraps into the next column covers the bottom row of one column and the top
    # row of the next.
    one_col = first_col == last_col
    top = np.where(one_col, starts % h, 0).min()
    bottom = np.where(one_col, lasts % h, h - 1).max()
    return [int(first_col.min()), int(top), int(last_col.max()), int(bottom)]


def rle_to_coco(rle: dict) -> dict:
    """Uncompressed RLE -> pycocotools' compressed RLE, ``counts`` as str (JSON-ready)."""
    h, w = rle["size"]
    coco = mask_utils.frPyObjects(rle, h, w)
    coco["counts"] = coco["counts"].decode("utf-8")
    return coco


def coco_rle_to_mask(coco: dict) -> np.ndarray:
    """pycocotools' compressed RLE (``counts`` str or bytes) -> (H, W) bool mask."""
    if isinstance(coco["counts"], str):
        coco = {"size": coco["size"], "counts": coco["counts"].encode("utf-8")}
    return mask_utils.decode(coco).astype(bool)
