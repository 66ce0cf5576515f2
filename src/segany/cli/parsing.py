"""Parsing the prompt arguments `--point X,Y[,LABEL]` and `--box X0,Y0,X1,Y1`.

Pure functions over strings; every mistake raises `PromptError` with a message that quotes
what was typed and says what was expected. Coordinates are xy pixels in the original image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segany.errors import PromptError

POINT_FORM = "X,Y or X,Y,LABEL (LABEL 1 = foreground, 0 = background)"
BOX_FORM = "X0,Y0,X1,Y1 (top-left corner, then bottom-right corner)"
_LABELS = {"1": 1, "0": 0}


def _coordinate(part: str, text: str, option: str, form: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise PromptError(
            f"{option} {text!r}: {part.strip()!r} is not a number; expected {form}"
        ) from None
    if not math.isfinite(value):
        raise PromptError(f"{option} {text!r}: coordinates must be finite numbers, got {part!r}")
    return value


def parse_point(text: str) -> tuple[float, float, int]:
    """'X,Y' or 'X,Y,LABEL' -> (x, y, label); the label defaults to 1 (foreground)."""
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise PromptError(
            f"--point {text!r} has {len(parts)} comma-separated values; expected {POINT_FORM}, "
            "e.g. --point 120,80 or --point 120,80,0"
        )
    x, y = (_coordinate(p, text, "--point", POINT_FORM) for p in parts[:2])
    label = 1
    if len(parts) == 3:
        label_text = parts[2].strip()
        if label_text not in _LABELS:
            raise PromptError(
                f"--point {text!r}: the label must be 1 (foreground) or 0 (background), "
                f"got {label_text!r}"
            )
        label = _LABELS[label_text]
    return x, y, label


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'X0,Y0,X1,Y1' -> (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0."""
    parts = text.split(",")
    if len(parts) != 4:
        raise PromptError(
            f"--box {text!r} has {len(parts)} comma-separated values; expected {BOX_FORM}, "
            "e.g. --box 40,30,200,180"
        )
    x0, y0, x1, y1 = (_coordinate(p, text, "--box", BOX_FORM) for p in parts)
    if x1 < x0 or y1 < y0:
        raise PromptError(
            f"--box {text!r}: expected {BOX_FORM} with X1 >= X0 and Y1 >= Y0; "
            f"got X0={x0:g}, X1={x1:g}, Y0={y0:g}, Y1={y1:g}"
        )
    return x0, y0, x1, y1


def parse_prompts(
    points: Sequence[str], boxes: Sequence[str]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The `--point` and `--box` strings -> (coords (N, 2) float64, labels (N,) int64,
    boxes (B, 4) float64), xy pixels in the original image.

    Absent prompts are None; at least one prompt is required. Each box is one object (SAM
    takes one box per prompt); the points, if any, go with every box.
    """
    if not points and not boxes:
        raise PromptError(
            "give at least one prompt: --point X,Y[,LABEL] (repeatable) and/or --box X0,Y0,X1,Y1"
        )
    coords = labels = box = None
    if points:
        parsed = [parse_point(p) for p in points]
        coords = np.array([(x, y) for x, y, _ in parsed], dtype=np.float64)  # (N, 2)
        labels = np.array([label for _, _, label in parsed], dtype=np.int64)  # (N,)
    if boxes:
        box = np.array([parse_box(b) for b in boxes], dtype=np.float64)  # (B, 4)
    return coords, labels, box


def check_inside_image(
    coords: np.ndarray | None, box: np.ndarray | None, width: int, height: int
) -> None:
    """box: (4,) or (B, 4) xyxy."""
    """Raise `PromptError` unless every point and box corner lies in the W x H image.

    The image covers [0, W] x [0, H] in xy pixels; a prompt outside it is almost always a
    mistake (x and y swapped, coordinates from another image size).
    """
    where = f"the image is {width}x{height} (x in 0..{width}, y in 0..{height})"
    if coords is not None:
        for x, y in coords:
            if not (0 <= x <= width and 0 <= y <= height):
                raise PromptError(f"--point {x:g},{y:g} lies outside the image: {where}")
    if box is not None:
        for x0, y0, x1, y1 in np.reshape(box, (-1, 4)):
            if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
                raise PromptError(
                    f"--box {x0:g},{y0:g},{x1:g},{y1:g} reaches outside the image: {where}"
                )
