"""Checks of user-supplied images and prompts, raising `ImageError` / `PromptError` with a
message that says what to fix. Pure functions over NumPy arrays."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from segany.errors import ImageError, PromptError

VALID_LABELS = (-1, 0, 1)


def as_rgb_array(image: Any, image_format: str = "RGB") -> np.ndarray:
    """A PIL image or (H, W, 3) uint8 array -> (H, W, 3) uint8 array in RGB order."""
    if image_format not in ("RGB", "BGR"):
        raise ImageError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"expected an (H, W, 3) uint8 NumPy array or a PIL image, got {type(image).__name__}"
        )
    if image.ndim != 3:
        raise ImageError(
            f"expected an (H, W, 3) image, got an array of shape {image.shape} "
            "(convert grayscale images to RGB first)"
        )
    if image.shape[2] != 3:
        raise ImageError(
            f"expected 3 colour channels, got {image.shape[2]} (shape {image.shape}); "
            "drop the alpha channel or convert to RGB"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise ImageError(
            f"expected dtype uint8 with values 0..255, got {image.dtype}; "
            "e.g. (image * 255).clip(0, 255).astype(np.uint8) for floats in 0..1"
        )
    if image_format == "BGR":
        image = image[..., ::-1]
    return image


def check_original_size(size: Any) -> tuple[int, int]:
    """An image's (H, W) in pixels, two positive integers; `ImageError` otherwise."""
    try:
        h, w = (int(side) for side in size)
    except (TypeError, ValueError) as exc:
        raise ImageError(
            f"original_size must be the image's (H, W) in pixels, got {size!r}"
        ) from exc
    if h <= 0 or w <= 0:
        raise ImageError(f"original_size must be positive (H, W), got {size}")
    return h, w


def _finite_float_array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{what} must be numeric, got {value!r}") from exc
    if not np.all(np.isfinite(array)):
        raise PromptError(f"{what} contains NaN or infinity: {array.tolist()}")
    return array


def check_points(
    point_coords: Any, point_labels: Any
) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Validate (N, 2) or (B, N, 2) xy points and their (N,) or (B, N) labels."""
    if point_coords is None and point_labels is None:
        return None, None
    if point_coords is None:
        raise PromptError("point_labels were given without point_coords")
    if point_labels is None:
        raise PromptError("point_coords were given without point_labels (1 = fg, 0 = bg)")
    coords = _finite_float_array(point_coords, "point_coords")
    if coords.ndim not in (2, 3) or coords.shape[-1] != 2 or coords.shape[-2] == 0:
        raise PromptError(f"point_coords must have shape (N, 2) with N >= 1, got {coords.shape}")
    labels = np.asarray(point_labels)
    if labels.shape != coords.shape[:-1]:
        raise PromptError(
            f"got {coords.shape[:-1]} points but point_labels of shape {labels.shape}: "
            "give one label per point"
        )
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isin(labels, VALID_LABELS)):
        raise PromptError(
            f"point_labels must be 1 (foreground), 0 (background) or -1 (padding), got "
            f"{np.unique(labels).tolist()}"
        )
    return coords, labels.astype(np.int64)


def check_boxes(box: Any) -> np.ndarray | None:
    """Validate a (4,) or (N, 4) xyxy box array; returns (N, 4) float64."""
    if box is None:
        return None
    boxes = _finite_float_array(box, "box")
    given = boxes.shape
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
        raise PromptError(f"box must have shape (4,) or (N, 4) as x0, y0, x1, y1; got {given}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if np.any(bad):
        raise PromptError(
            f"box must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0; got {boxes[bad][0].tolist()}"
        )
    return boxes


def check_outputs(multimask_output: Any) -> None:
    """`predict`'s multimask_output: True, False or "all" (the 4 outputs)."""
    if isinstance(multimask_output, str) and multimask_output != "all":
        given = repr(multimask_output)
        raise PromptError(f"multimask_output must be True, False or 'all', got {given}")


def check_mask_input(
    mask_input: Any, low_res_size: tuple[int, int], batch: int
) -> np.ndarray | None:
    """Validate low-resolution mask logits: (1, h, w) or (B, 1, h, w) -> (B or 1, 1, h, w)."""
    if mask_input is None:
        return None
    mask = _finite_float_array(mask_input, "mask_input")
    h, w = low_res_size
    if mask.ndim == 3 and mask.shape == (1, h, w):
        return mask[None]
    if mask.ndim == 4 and mask.shape[1:] == (1, h, w) and mask.shape[0] in (1, batch):
        return mask
    raise PromptError(
        f"mask_input must have shape (1, {h}, {w}) (the low_res_logits of a previous predict "
        f"for one mask, e.g. logits[np.argmax(scores)][None]), got {mask.shape}"
    )


class Prompts(NamedTuple):
    """One `predict` call's checked prompts, in the caller's frame: coords (N, 2) or
    (B, N, 2) float64 and labels (N,) or (B, N) int64; boxes (B, 4) float64; masks
    (1 or B, 1, h, w) float64; batch B (the number of boxes, else 1)."""

    coords: np.ndarray | None
    labels: np.ndarray | None
    boxes: np.ndarray | None
    masks: np.ndarray | None
    batch: int


def check_prompts(
    point_coords: Any,
    point_labels: Any,
    box: Any,
    mask_input: Any,
    multimask_output: Any,
    low_res_size: tuple[int, int],
) -> Prompts:
    """All of `predict`'s prompt checks; at least one prompt must be given."""
    check_outputs(multimask_output)
    coords, labels = check_points(point_coords, point_labels)
    boxes = check_boxes(box)
    if coords is None and boxes is None and mask_input is None:
        raise PromptError("give at least one prompt: point_coords, box or mask_input")
    batch = 1 if boxes is None else boxes.shape[0]
    if coords is not None and coords.ndim == 3 and coords.shape[0] != batch:
        raise PromptError(
            f"point_coords of shape {coords.shape} need {coords.shape[0]} boxes, got {batch}"
        )
    masks = check_mask_input(mask_input, low_res_size, batch)
    return Prompts(coords, labels, boxes, masks, batch)
