"""Checking and converting the video predictor's prompts (pure functions, no model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from segany.errors import PromptError
from segany.modeling.sam2.memory_bank import PointInputs

BOX_LABELS = (2, 3)  # SAM's labels of a box's top-left and bottom-right corners


def _as_tensor(value: Any, dtype: torch.dtype, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
    except (TypeError, ValueError) as e:
        raise PromptError(f"{name} must be an array of numbers: {e}") from None
    if tensor.is_complex():
        raise PromptError(f"{name} must be real numbers, got {tensor.dtype}")
    return tensor.to(dtype)


def point_prompt(
    points: Any,
    labels: Any,
    box: Any,
    clear_old_points: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's `add_new_points_or_box` inputs -> ((1, P, 2) float32 xy, (1, P) int32
    labels), box corners first (labels 2, 3), in the coordinates given.

    points: (N, 2) or (1, N, 2) xy; labels: (N,) or (1, N), 1 positive / 0 negative; box:
    4 numbers x0, y0, x1, y1. Raises `PromptError` for missing or mismatched inputs.
    """
    if (points is None) != (labels is None):
        raise PromptError("points and labels must be given together (one label per point)")
    if points is None and box is None:
        raise PromptError("give points with labels, a box, or both")
    if points is None:
        coords = torch.zeros(1, 0, 2)
        point_labels = torch.zeros(1, 0, dtype=torch.int32)
    else:
        coords = _as_tensor(points, torch.float32, "points")
        point_labels = _as_tensor(labels, torch.int32, "labels")
        if coords.dim() == 2:
            coords = coords[None]  # (1, N, 2)
        if point_labels.dim() == 1:
            point_labels = point_labels[None]  # (1, N)
        if coords.dim() != 3 or coords.shape[0] != 1 or coords.shape[2] != 2:
            raise PromptError(
                f"points must be (N, 2) xy pixels (or (1, N, 2)), got shape {tuple(coords.shape)}"
            )
        if point_labels.dim() != 2 or point_labels.shape != coords.shape[:2]:
            raise PromptError(
                f"labels must be (N,) with one label per point: {coords.shape[1]} points, "
                f"labels of shape {tuple(point_labels.shape)}"
            )
    if box is not None:
        if not clear_old_points:
            raise PromptError(
                "a box must come before any click on its frame: add it with clear_old_points=True"
            )
        corners = _as_tensor(box, torch.float32, "box")
        if corners.numel() != 4:
            raise PromptError(
                f"box must be 4 numbers x0, y0, x1, y1, got shape {tuple(corners.shape)}"
            )
        corners = corners.reshape(1, 2, 2)  # (1, 2 corners, xy)
        corner_labels = torch.tensor([BOX_LABELS], dtype=torch.int32)
        coords = torch.cat([corners, coords.to(corners.device)], dim=1)
        point_labels = torch.cat([corner_labels, point_labels.to(corner_labels.device)], dim=1)
    return coords, point_labels


def to_model_frame(
    coords: torch.Tensor,
    video_size: tuple[int, int],
    image_size: int,
    normalize_coords: bool,
) -> torch.Tensor:
    """(1, P, 2) xy in the video's pixels (or in [0, 1] when not `normalize_coords`) -> the
    model-input frame (image_size x image_size pixels). video_size: (H, W)."""
    if normalize_coords:
        height, width = video_size
        coords = coords / torch.tensor([width, height])
    return coords * image_size


def append_points(old: PointInputs | None, coords: torch.Tensor, labels: torch.Tensor):
    """Points of a frame with new ones appended (clicks accumulate unless cleared)."""
    if old is None:
        return PointInputs(coords, labels)
    return PointInputs(
        torch.cat([old.coords, coords], dim=1), torch.cat([old.labels, labels], dim=1)
    )


def mask_prompt(mask: Any) -> torch.Tensor:
    """A (H, W) mask prompt (bool, 0/1 or probabilities) as a tensor, or `PromptError`."""
    if not torch.is_tensor(mask):
        try:
            mask = torch.tensor(np.asarray(mask), dtype=torch.bool)
        except (TypeError, ValueError) as e:
            raise PromptError(f"mask must be a (H, W) array: {e}") from None
    if mask.dim() != 2:
        raise PromptError(f"mask must be (H, W), got shape {tuple(mask.shape)}")
    return mask
