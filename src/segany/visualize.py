"""Drawing a mask and its prompts over an image, for a quick look. PIL and NumPy, no model.

Everything is in the original image frame: (H, W) masks, xy pixel points and xyxy boxes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segany.errors import ImageError
from segany.validation import as_rgb_array

MASK_COLOR = (30, 144, 255)  # a blue that stays visible on skin, grass and sky alike
FOREGROUND_COLOR = (0, 200, 0)
BACKGROUND_COLOR = (230, 20, 20)
BOX_COLOR = (255, 200, 0)


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: the mask pixels within `width` pixels of its edge.

    Uses 4-neighbour erosion; pixels beyond the image border count as background, so a mask
    touching the border is outlined there too.
    """
    mask = np.asarray(mask, dtype=bool)
    inner = mask
    for _ in range(width):
        padded = np.pad(inner, 1, constant_values=False)  # (H + 2, W + 2)
        inner = (
            padded[1:-1, 1:-1]
            & padded[:-2, 1:-1]
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
    return mask & ~inner


def blend_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = MASK_COLOR,
    alpha: float = 0.5,
) -> np.ndarray:
    """(H, W, 3) uint8 image with the (H, W) mask's pixels alpha-blended towards `color`."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_overlay(
    image: Any,
    mask: np.ndarray,
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    color: tuple[int, int, int] = MASK_COLOR,
    alpha: float = 0.5,
) -> Image.Image:
    """The image with the mask tinted and outlined in `color`, and the prompts drawn on top.

    Args:
        image: (H, W, 3) uint8 RGB array or a PIL image.
        mask: (H, W) bool.
        point_coords: (N, 2) xy pixels; point_labels: (N,) 1 foreground (green dot),
            0 background (red dot); other labels (-1, padding) are not drawn.
        box: (4,) or (B, 4) xyxy pixels.

    Returns an RGB PIL image of the same size as `image`.
    """
    rgb = as_rgb_array(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ImageError(f"mask of shape {mask.shape} does not fit an image of {rgb.shape[:2]}")
    short_side = min(rgb.shape[:2])
    line = max(1, round(short_side / 300))  # lines and markers grow with the image
    radius = max(3, round(short_side / 60))

    tinted = blend_mask(rgb, mask, color, alpha)
    tinted[mask_outline(mask, line)] = color
    canvas = Image.fromarray(tinted)
    draw = ImageDraw.Draw(canvas)
    if box is not None:
        for x0, y0, x1, y1 in np.reshape(np.asarray(box, dtype=float), (-1, 4)):
            draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOR, width=line + 1)
    if point_coords is not None:
        labels = np.ones(len(point_coords)) if point_labels is None else point_labels
        for (x, y), label in zip(point_coords, labels, strict=True):
            if label not in (0, 1):
                continue
            fill = FOREGROUND_COLOR if label == 1 else BACKGROUND_COLOR
            draw.ellipse(
                (x - radius, y - radius, x + radius, y + radius),
                fill=fill,
                outline=(255, 255, 255),
                width=max(1, radius // 4),
            )
    return canvas


def distinct_color(index: int) -> tuple[int, int, int]:
    """The `index`-th of an endless sequence of saturated, well-separated RGB colours.

    Hues step by the golden ratio, so any run of consecutive indices is spread around the
    colour wheel (the same colour for the same index every time).
    """
    hue = (index * 0.6180339887) % 1.0
    value = 0.95 if index % 2 == 0 else 0.75  # alternate brightness: neighbours differ more
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, value)
    return round(255 * r), round(255 * g), round(255 * b)


def draw_masks(image: Any, masks: Iterable[np.ndarray], alpha: float = 0.45) -> Image.Image:
    """The image with every mask tinted and outlined in its own colour (`distinct_color(i)`).

    Args:
        image: (H, W, 3) uint8 RGB array or a PIL image.
        masks: (H, W) bool masks, consumed one at a time (a generator keeps memory at one
            mask); later masks are drawn over earlier ones, so pass the largest first.
        alpha: opacity of the tint.

    Returns an RGB PIL image of the same size as `image`.
    """
    rgb = as_rgb_array(image)
    canvas = rgb.astype(np.float32)
    line = max(1, round(min(rgb.shape[:2]) / 400))
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != rgb.shape[:2]:
            raise ImageError(
                f"mask {i} of shape {mask.shape} does not fit an image of {rgb.shape[:2]}"
            )
        color = np.asarray(distinct_color(i), dtype=np.float32)
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * color
        canvas[mask_outline(mask, line)] = color
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
