"""Stability score of predicted masks: how little a mask changes when its threshold moves."""

from __future__ import annotations

import torch

_INT16_MAX = 2**15 - 1
_INT32_MAX = 2**31 - 1


def stability_score(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """(N, H, W) mask logits -> (N,) float32 IoU of the masks thresholded at
    ``mask_threshold + offset`` and ``mask_threshold - offset`` (the first lies inside the
    second, so the IoU is a ratio of areas). NaN where both masks are empty.

    Bit-identical to segment-anything's `calculate_stability_score`.
    """
    inner = _area(logits > (mask_threshold + offset))
    outer = _area(logits > (mask_threshold - offset))
    return inner / outer


def _area(masks: torch.Tensor) -> torch.Tensor:
    """(..., H, W) bool -> (...,) integer count of set pixels."""
    h, w = masks.shape[-2:]
    # Summing a bool tensor with a dtype casts it first; a narrow row-sum dtype keeps that
    # copy small, as long as a whole row of set pixels still fits in it.
    row_dtype = torch.int16 if w <= _INT16_MAX else torch.int32
    total_dtype = torch.int32 if h * w <= _INT32_MAX else torch.int64
    return masks.sum(dim=-1, dtype=row_dtype).sum(dim=-1, dtype=total_dtype)
