"""Pixel boxes of masks, and moving boxes and points from a crop's frame to the image's.

Boxes are xyxy pixel indices with inclusive right and bottom edges (a one-pixel mask at x, y
has the box [x, y, x, y]), as segment-anything's automatic mask generator uses them. A crop box
is [x0, y0, x1, y1] in the original image, exclusive on the right and bottom.
"""

from __future__ import annotations

import torch


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(..., H, W) bool -> (..., 4) int64 xyxy inclusive boxes; [0, 0, 0, 0] for empty masks."""
    *batch, h, w = masks.shape
    if h == 0 or w == 0:
        return torch.zeros(*batch, 4, dtype=torch.int64, device=masks.device)
    masks = masks.bool()
    rows_hit = masks.any(dim=-1)  # (..., H)
    cols_hit = masks.any(dim=-2)  # (..., W)
    y1, y2 = _first_last(rows_hit)
    x1, x2 = _first_last(cols_hit)
    boxes = torch.stack([x1, y1, x2, y2], dim=-1)  # (..., 4)
    empty = ~rows_hit.any(dim=-1)  # (...,)
    return boxes.masked_fill(empty.unsqueeze(-1), 0)


def _first_last(hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., L) bool -> (...,) int64 indices of the first and last True (garbage if none)."""
    length = hit.shape[-1]
    index = torch.arange(length, device=hit.device)
    first = torch.where(hit, index, length).amin(dim=-1)
    last = torch.where(hit, index, -1).amax(dim=-1)
    return first, last


def box_xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyxy -> (..., 4) xywh (a new tensor), with w = x2 - x1 and h = y2 - y1."""
    corner = boxes[..., :2]
    return torch.cat([corner, boxes[..., 2:] - corner], dim=-1)


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """(..., 4) xyxy in the crop's frame -> (..., 4) xyxy in the original image."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """(..., 2) xy in the crop's frame -> (..., 2) xy in the original image."""
    return points + torch.tensor([crop_box[0], crop_box[1]], device=points.device)


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """(N, 4) xyxy boxes in the crop's frame -> (N,) bool: some edge lies within `atol` pixels
    of the same edge of `crop_box`, and that edge of the crop is not (within `atol`) an edge
    of `orig_box`, the whole image. Such masks were likely cut off by the crop.
    """
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.as_tensor(orig_box, dtype=torch.float32, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()  # (N, 4) original frame
    near_crop = (boxes - crop).abs() <= atol
    near_image = (boxes - image).abs() <= atol
    return (near_crop & ~near_image).any(dim=-1)
