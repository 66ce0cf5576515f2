"""The prompt fields every route takes, checked the same way: points [x, y, label] with finite
coordinates and a label of 1 (include) or 0 (exclude), boxes [x0, y0, x1, y1] finite with
x1 >= x0 and y1 >= y0. Used by the annotation routes (image pixels) and the GeoTIFF route (map
coordinates); where the prompts must lie (on the image, on the raster) is checked by each."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator

from segany.errors import PromptError

Point = tuple[float, float, int]
BoxXyxy = tuple[float, float, float, float]


def _check_points(points: list[Point]) -> list[Point]:
    for x, y, label in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point coordinates must be finite numbers, got {[x, y]}")
        if label not in (0, 1):
            raise ValueError(f"a point's label must be 1 (include) or 0 (exclude), got {label}")
    return points


def _check_box(box: BoxXyxy) -> BoxXyxy:
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box) or x1 < x0 or y1 < y0:
        raise ValueError(
            f"box must be [x0, y0, x1, y1], finite, with x1 >= x0 and y1 >= y0; got {list(box)}"
        )
    return box


Points = Annotated[list[Point], AfterValidator(_check_points)]
Box = Annotated[BoxXyxy, AfterValidator(_check_box)]


def check_prompt_count(points: list[Point], box: BoxXyxy | None, limit: int) -> None:
    """`PromptError` when there is neither a point nor a box, or more than `limit` points."""
    if not points and box is None:
        raise PromptError("give at least one point or a box")
    if len(points) > limit:
        raise PromptError(f"{len(points)} points in one request; at most {limit}")


def check_on_image(points: list[Point], box: BoxXyxy | None, width: int, height: int) -> None:
    """`PromptError` for a point or box corner off a `width` x `height` image (its pixel
    frame: 0..width, 0..height)."""
    for x, y, _ in points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise PromptError(f"point ({x:g}, {y:g}) lies outside the {width}x{height} image")
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
            raise PromptError(f"box {list(box)} reaches outside the {width}x{height} image")
