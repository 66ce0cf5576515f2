"""Pure functions on the video predictor's mask logits (no model, no state)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# The logit of an object absent from a frame (the reference's NO_OBJ_SCORE).
NO_OBJECT_SCORE = -1024.0
# The logit given to filled holes: just above the mask threshold (0).
_HOLE_FILL = 0.1


def to_size(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, h, w) logits -> (N, 1, H, W) by bilinear interpolation (unchanged if already
    that size)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def non_overlapping(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) logits of N objects: where an object is not the highest-scoring one, its
    logit is capped at -10 (sigmoid 4.5e-5), so that no pixel is in two masks."""
    if logits.shape[0] == 1:
        return logits
    winner = logits.argmax(dim=0, keepdim=True)  # (1, 1, H, W) object index
    index = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(winner == index, logits, logits.clamp(max=-10.0))


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """(N, 1, H, W) logits with every background region (logit <= 0, 8-connected) of at most
    `max_area` pixels set to 0.1, i.e. made foreground. The reference does this with a CUDA
    extension and skips it (with a warning) where that is not built, e.g. on CPUs."""
    if max_area <= 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    background = (logits <= 0).cpu().numpy()  # (N, 1, H, W) bool
    holes = np.zeros_like(background)
    eight = np.ones((3, 3), dtype=bool)
    for i in range(background.shape[0]):
        labels, count = ndimage.label(background[i, 0], structure=eight)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = areas <= max_area
        small[0] = False  # label 0 is the foreground
        holes[i, 0] = small[labels]
    is_hole = torch.from_numpy(holes).to(logits.device)
    return torch.where(is_hole, torch.full_like(logits, _HOLE_FILL), logits)


def mask_to_model_input(mask: torch.Tensor, image_size: int) -> torch.Tensor:
    """A (H, W) mask prompt -> (1, 1, S, S) float32 of 0 and 1: antialiased bilinear resize
    to the model's input size and a threshold at 0.5 (unchanged if already S x S)."""
    mask = mask[None, None].float()  # (1, 1, H, W)
    if tuple(mask.shape[-2:]) == (image_size, image_size):
        return mask
    resized = F.interpolate(
        mask, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
    )
    return (resized >= 0.5).float()
