"""Resize-longest-side and the conversions between the original and the model-input frame.

The *original* frame is the user's (H, W) image; the *input* frame is the image resized so its
longest side is `long_side` (h', w'), before padding. Coordinates are xy pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h', w') of an (height, width) image resized so its longest side is `long_side`.

    A side that would round to 0 (a 1 x 5000 strip) is kept at 1 px; the reference fails there.
    """
    scale = long_side * 1.0 / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize_image(image: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h', w', 3) uint8, bilinear (PIL, antialiased), as SAM was trained."""
    new_h, new_w = preprocess_shape(image.shape[0], image.shape[1], long_side)
    if (new_h, new_w) == image.shape[:2]:
        return image
    resized = Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR)
    return np.array(resized)  # writable, so torch can share it


def coords_to_input(
    coords: np.ndarray, original_size: tuple[int, int], long_side: int
) -> np.ndarray:
    """(..., 2) xy in the original frame -> float64 xy in the input frame."""
    old_h, old_w = original_size
    new_h, new_w = preprocess_shape(old_h, old_w, long_side)
    coords = np.array(coords, dtype=np.float64, copy=True)
    coords[..., 0] *= new_w / old_w
    coords[..., 1] *= new_h / old_h
    return coords


def boxes_to_input(boxes: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """(..., 4) xyxy in the original frame -> (N, 4) float64 xyxy in the input frame."""
    corners = coords_to_input(np.reshape(boxes, (-1, 2, 2)), original_size, long_side)
    return corners.reshape(-1, 4)


def coords_to_input_torch(
    coords: torch.Tensor, original_size: tuple[int, int], long_side: int
) -> torch.Tensor:
    """Torch twin of `coords_to_input`, keeping dtype and device: (..., 2) -> (..., 2)."""
    old_h, old_w = original_size
    new_h, new_w = preprocess_shape(old_h, old_w, long_side)
    scale = torch.tensor([new_w / old_w, new_h / old_h], dtype=coords.dtype, device=coords.device)
    return coords * scale


def boxes_to_input_torch(
    boxes: torch.Tensor, original_size: tuple[int, int], long_side: int
) -> torch.Tensor:
    """Torch twin of `boxes_to_input`: (..., 4) -> (N, 4)."""
    corners = coords_to_input_torch(boxes.reshape(-1, 2, 2), original_size, long_side)
    return corners.reshape(-1, 4)
