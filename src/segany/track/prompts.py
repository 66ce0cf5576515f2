"""Checking an `ObjectPrompt` against the sequence it is given on (pure functions, no model).

Every tracker checks its prompts here, so that a bad prompt gets the same `PromptError`
whichever model tracks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segany.errors import PromptError
from segany.track.base import ObjectPrompt


def check_object_id(object_id: Any) -> int:
    """`object_id` as an int >= 1, or `PromptError` (0 is the background in every output)."""
    if isinstance(object_id, bool) or not isinstance(object_id, int | np.integer):
        raise PromptError(f"an object id must be an int >= 1, got {object_id!r}")
    if object_id < 1:
        raise PromptError(
            f"object id {int(object_id)} is not allowed: ids start at 1 (0 is the background)"
        )
    return int(object_id)


def check_frame(frame: Any, num_frames: int) -> int:
    """`frame` as an int in [0, num_frames), or `PromptError` naming the valid range."""
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
        raise PromptError(f"a prompt's frame must be an int, got {frame!r}")
    if not 0 <= frame < num_frames:
        raise PromptError(
            f"prompt on frame {int(frame)}, but the sequence has {num_frames} frames "
            f"(0 to {num_frames - 1})"
        )
    return int(frame)


def _numbers(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(f"{what} must be numbers, got {value!r}") from None
    if not np.isfinite(array).all():
        raise PromptError(f"{what} must be finite numbers, got {value!r}")
    return array


def check_points(points: Any, height: int, width: int) -> np.ndarray:
    """(N, 3) rows (x, y, label), label 1 foreground / 0 background, inside the (H, W) frame ->
    (N, 3) float64; `PromptError` for another shape, a label other than 0/1 or a point
    outside the frame."""
    array = _numbers(points, "points")
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise PromptError(
            f"points must be a list of [x, y, label] rows (shape (N, 3), N >= 1), got shape "
            f"{array.shape}"
        )
    labels = array[:, 2]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise PromptError(
            f"a point's label must be 1 (foreground) or 0 (background), got {labels.tolist()}"
        )
    xs, ys = array[:, 0], array[:, 1]
    outside = (xs < 0) | (xs > width) | (ys < 0) | (ys > height)
    if outside.any():
        x, y = array[np.argmax(outside), :2]
        raise PromptError(f"point ({x:g}, {y:g}) lies outside the {width}x{height} frame")
    return array


def check_box(box: Any, height: int, width: int) -> np.ndarray:
    """(4,) x0, y0, x1, y1 with x0 < x1 and y0 < y1, overlapping the (H, W) frame -> (4,)
    float64 clipped to the frame; `PromptError` otherwise."""
    array = _numbers(box, "box").reshape(-1)
    if array.shape != (4,):
        raise PromptError(f"box must be 4 numbers [x0, y0, x1, y1], got {box!r}")
    x0, y0, x1, y1 = array
    if not (x0 < x1 and y0 < y1):
        raise PromptError(f"box must have x0 < x1 and y0 < y1, got {array.tolist()}")
    clipped = np.array([max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)])
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        raise PromptError(f"box {array.tolist()} lies outside the {width}x{height} frame")
    return clipped


def check_prompt(prompt: Any, num_frames: int, height: int, width: int) -> ObjectPrompt:
    """A checked copy of `prompt` for a sequence of `num_frames` (H, W) frames: frame an int
    in range, object_id >= 1, points (N, 3) float64 or None, box (4,) float64 or None (at
    least one). Raises `PromptError` saying what is wrong."""
    if not isinstance(prompt, ObjectPrompt):
        raise PromptError(f"expected a segany.track.ObjectPrompt, got {type(prompt).__name__}")
    frame = check_frame(prompt.frame, num_frames)
    object_id = check_object_id(prompt.object_id)
    if prompt.points is None and prompt.box is None:
        raise PromptError(
            f"the prompt for object {object_id} on frame {frame} has neither points nor a box: "
            "give at least one"
        )
    points = None if prompt.points is None else check_points(prompt.points, height, width)
    box = None if prompt.box is None else check_box(prompt.box, height, width)
    return ObjectPrompt(frame=frame, object_id=object_id, points=points, box=box)
