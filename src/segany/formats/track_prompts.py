"""The prompts of `segany track`: a prompts.json file, parsed and checked against a sequence.

prompts.json is a list of prompts, each for one object on one frame:

    [{"frame": 0, "object": 1, "points": [[x, y, label], ...], "box": [x0, y0, x1, y1]},
     {"frame": 12, "object": 2, "box": [40, 30, 200, 180], "category": "car"}]

`points` or `box` may be left out, not both; a point [x, y] without a label is foreground (1),
label 0 is background. Coordinates are xy pixels of the sequence's frames (x right, y down,
origin at the top-left pixel's corner). `category` (optional, a name) groups objects in the
JSON outputs; an object without one is an "object". Every mistake raises `PromptError` naming
the prompt (its position in the list) and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segany.errors import PromptError
from segany.track.base import ObjectPrompt

# A bound on the file's size in prompts: a person clicks, a program that wrote 10,000 prompts
# has most likely gone wrong (and each prompt costs a decoder pass).
MAX_PROMPTS = 10_000
MAX_POINTS = 1_000
# Label PNGs hold one byte per pixel: object ids 1..255 (0 is the background).
MAX_PNG_OBJECT_ID = 255
DEFAULT_CATEGORY = "object"
_KEYS = {"frame", "object", "points", "box", "category"}


@dataclass
class TrackPrompts:
    """The parsed prompts, in the file's order, and each object's category name."""

    prompts: list[ObjectPrompt]
    categories: dict[int, str] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        """The prompted objects' ids, ascending."""
        return sorted({p.object_id for p in self.prompts})

    def category(self, object_id: int) -> str:
        return self.categories.get(object_id, DEFAULT_CATEGORY)

    def digest(self) -> str:
        """sha256 of the prompts in a canonical form: the same prompts give the same digest
        whatever the file's spacing (a resumed run checks it is resuming the same prompts)."""
        canonical = [
            {
                "frame": p.frame,
                "object": p.object_id,
                "points": None if p.points is None else p.points.tolist(),
                "box": None if p.box is None else p.box.tolist(),
                "category": self.categories.get(p.object_id),
            }
            for p in self.prompts
        ]
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _where(index: int) -> str:
    return f"prompt {index} (counting from 0)"


def _integer(value: Any, what: str, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PromptError(f"{_where(index)}: {what} must be an integer, got {value!r}")
    return value


def _number(value: Any, what: str, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PromptError(f"{_where(index)}: {what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise PromptError(f"{_where(index)}: {what} must be a finite number, got {value!r}")
    return float(value)


def _points(value: Any, index: int) -> np.ndarray:
    form = "a list of [x, y] or [x, y, label] (label 1 foreground, 0 background)"
    if not isinstance(value, list) or not value:
        raise PromptError(f"{_where(index)}: 'points' must be {form}, got {value!r}")
    if len(value) > MAX_POINTS:
        raise PromptError(f"{_where(index)}: {len(value)} points; at most {MAX_POINTS}")
    rows = []
    for point in value:
        if not isinstance(point, list) or len(point) not in (2, 3):
            raise PromptError(f"{_where(index)}: each point must be {form}, got {point!r}")
        x, y = (_number(v, "a point's coordinate", index) for v in point[:2])
        label = 1 if len(point) == 2 else _integer(point[2], "a point's label", index)
        if label not in (0, 1):
            raise PromptError(
                f"{_where(index)}: a point's label must be 1 (foreground) or 0 (background), "
                f"got {label}"
            )
        rows.append((x, y, label))
    return np.array(rows, dtype=np.float64)  # (N, 3) x, y, label


def _box(value: Any, index: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != 4:
        raise PromptError(
            f"{_where(index)}: 'box' must be [x0, y0, x1, y1] (top-left, then bottom-right "
            f"corner), got {value!r}"
        )
    x0, y0, x1, y1 = (_number(v, "a box coordinate", index) for v in value)
    if x1 <= x0 or y1 <= y0:
        raise PromptError(
            f"{_where(index)}: 'box' {value!r} is empty or inverted; expected [x0, y0, x1, y1] "
            "with x1 > x0 and y1 > y0"
        )
    return np.array([x0, y0, x1, y1], dtype=np.float64)  # (4,)


def check_object_id(object_id: int, where: str) -> None:
    if object_id < 1:
        raise PromptError(
            f"{where}: object id {object_id} is not allowed; ids start at 1 (0 is the "
            "background in every output)"
        )


def parse_track_prompts(data: Any, source: str = "prompts.json") -> TrackPrompts:
    """Parsed JSON (a list of dicts, see the module's docstring) -> `TrackPrompts`.

    Two prompts for the same object on the same frame are refused (the second would silently
    replace the first in the tracker); an object's category must be the same in every prompt.
    """
    if not isinstance(data, list):
        raise PromptError(
            f"{source}: expected a JSON list of prompts such as "
            '[{"frame": 0, "object": 1, "points": [[x, y, 1]]}], '
            f"got a {type(data).__name__}"
        )
    if not data:
        raise PromptError(f"{source}: the list of prompts is empty; give at least one")
    if len(data) > MAX_PROMPTS:
        raise PromptError(f"{source}: {len(data)} prompts; at most {MAX_PROMPTS} are accepted")
    prompts: list[ObjectPrompt] = []
    categories: dict[int, str] = {}
    seen: set[tuple[int, int]] = set()
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise PromptError(f"{source}: {_where(index)} must be an object, got {entry!r}")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise PromptError(
                f"{source}: {_where(index)} has unknown keys {unknown}; expected {sorted(_KEYS)}"
            )
        for key in ("frame", "object"):
            if key not in entry:
                raise PromptError(f"{source}: {_where(index)} has no {key!r}")
        frame = _integer(entry["frame"], "'frame'", index)
        if frame < 0:
            raise PromptError(f"{source}: {_where(index)}: 'frame' must be >= 0, got {frame}")
        object_id = _integer(entry["object"], "'object'", index)
        check_object_id(object_id, f"{source}: {_where(index)}")
        points = None if entry.get("points") is None else _points(entry["points"], index)
        box = None if entry.get("box") is None else _box(entry["box"], index)
        if points is None and box is None:
            raise PromptError(f"{source}: {_where(index)} needs 'points', 'box' or both")
        if (frame, object_id) in seen:
            raise PromptError(
                f"{source}: {_where(index)} is a second prompt for object {object_id} on frame "
                f"{frame}; put all its points in one prompt"
            )
        seen.add((frame, object_id))
        if "category" in entry:
            name = entry["category"]
            if not isinstance(name, str) or not name.strip():
                raise PromptError(f"{source}: {_where(index)}: 'category' must be a name")
            if categories.setdefault(object_id, name) != name:
                raise PromptError(
                    f"{source}: {_where(index)}: object {object_id} is {name!r} here but "
                    f"{categories[object_id]!r} in an earlier prompt"
                )
        prompts.append(ObjectPrompt(frame=frame, object_id=object_id, points=points, box=box))
    return TrackPrompts(prompts, categories)


def read_track_prompts(path: Path) -> TrackPrompts:
    """Read and parse a prompts.json file (`PromptError` if missing, not JSON, or malformed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PromptError(f"cannot read the prompts file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PromptError(f"the prompts file {path} is not UTF-8 text") from None
    try:
        # NaN and Infinity are not JSON; Python's parser accepts them unless told not to.
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as e:
        raise PromptError(f"the prompts file {path} is not valid JSON: {e}") from None
    return parse_track_prompts(data, str(path))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (coordinates must be finite)")


def check_prompts_fit(
    prompts: TrackPrompts, frames: int, width: int, height: int, max_object_id: int | None
) -> None:
    """Refuse prompts that do not fit the opened sequence: a frame past its end, a point or box
    corner outside the W x H frame ([0, W] x [0, H] in pixels), or an object id above
    `max_object_id` (255 for the PNG outputs; None: no bound)."""
    for i, prompt in enumerate(prompts.prompts):
        where = f"prompt {i} (object {prompt.object_id}, frame {prompt.frame})"
        if prompt.frame >= frames:
            raise PromptError(
                f"{where}: frame {prompt.frame} is past the end; the sequence has {frames} "
                f"frames (0..{frames - 1})"
            )
        if max_object_id is not None and prompt.object_id > max_object_id:
            raise PromptError(
                f"{where}: object id {prompt.object_id} does not fit an 8-bit label PNG (ids "
                f"1..{max_object_id}); renumber the objects or use --format ytvis or coco"
            )
        inside = f"the frames are {width}x{height} (x in 0..{width}, y in 0..{height})"
        if prompt.points is not None:
            for x, y, _ in prompt.points:
                if not (0 <= x <= width and 0 <= y <= height):
                    raise PromptError(f"{where}: point {x:g},{y:g} lies outside: {inside}")
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            if not (0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height):
                raise PromptError(
                    f"{where}: box {x0:g},{y0:g},{x1:g},{y1:g} reaches outside: {inside}"
                )
