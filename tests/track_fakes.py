"""A fake tracker and synthetic frames for the tests of `segany track`'s outputs and passes.

`ColourTracker` follows the `segany.track` interface without a model: each object is the set
of pixels whose colour equals the colour under its prompt (the first point, else the box's
centre) on the prompted frame. Going forward an object exists from its first prompt on, going
backward up to its last prompt, as a real tracker only reaches frames from a prompt. Being
exact and deterministic, it lets the tests compare resumed and uninterrupted runs pixel for
pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from segany.sequences import ArraySequence
from segany.sequences.base import FrameSequence
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession

COLOURS = {1: (200, 30, 30), 2: (30, 200, 30), 3: (30, 30, 200)}


def square_frames(length: int, height: int = 24, width: int = 32, objects: int = 2) -> np.ndarray:
    """(T, H, W, 3) uint8: grey background, object k a 6x6 square of COLOURS[k] moving one
    pixel right per frame (object 2 starts lower and further right)."""
    frames = np.full((length, height, width, 3), 90, dtype=np.uint8)
    for t in range(length):
        for k in range(1, objects + 1):
            y, x = 2 + 8 * (k - 1), (2 + 5 * (k - 1) + t) % (width - 6)
            frames[t, y : y + 6, x : x + 6] = COLOURS[k]
    return frames


def square_at(frame: int, k: int, width: int = 32) -> tuple[float, float]:
    """The centre (x, y) of object k's square on `frame` of `square_frames`."""
    y, x = 2 + 8 * (k - 1), (2 + 5 * (k - 1) + frame) % (width - 6)
    return x + 3.0, y + 3.0


class ColourSession(TrackingSession):
    def __init__(self, sequence: FrameSequence, log: list) -> None:
        self.sequence = sequence
        self.prompts: dict[tuple[int, int], ObjectPrompt] = {}
        self.colours: dict[int, np.ndarray] = {}
        self.log = log

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        self.log.append(("prompt", prompt.frame, prompt.object_id))
        self.prompts[prompt.frame, prompt.object_id] = prompt
        if prompt.points is not None:
            x, y = prompt.points[0, :2]
        else:
            x, y = (prompt.box[0] + prompt.box[2]) / 2, (prompt.box[1] + prompt.box[3]) / 2
        rgb = self.sequence.rgb(prompt.frame)
        self.colours.setdefault(prompt.object_id, rgb[int(y), int(x)].copy())
        return self._result(prompt.frame, None)

    def _result(self, frame: int, reverse: bool | None) -> FrameResult:
        rgb = self.sequence.rgb(frame)
        result = FrameResult(frame)
        for object_id, colour in sorted(self.colours.items()):
            frames = [f for f, o in self.prompts if o == object_id]
            present = (
                reverse is None
                or (not reverse and min(frames) <= frame)
                or (reverse and max(frames) >= frame)
            )
            mask = np.all(rgb == colour, axis=-1) & present
            result.masks[object_id] = mask
            result.scores[object_id] = 0.9 if mask.any() else 0.0
        return result

    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        frames = [f for f, _ in self.prompts]
        if start is None:
            start = max(frames) if reverse else min(frames)
        self.log.append(("propagate", start, reverse, max_frames))
        stop = -1 if reverse else len(self.sequence)
        order = range(start, stop, -1 if reverse else 1)
        if max_frames is not None:
            order = order[:max_frames]
        for frame in order:
            yield self._result(frame, reverse)

    def remove_object(self, object_id: int) -> None:
        self.colours.pop(object_id, None)


class ColourTracker(Tracker):
    name = "colour"

    def __init__(self) -> None:
        self.log: list = []

    def open(self, sequence: FrameSequence) -> TrackingSession:
        self.log.append(("open",))
        return ColourSession(sequence, self.log)


def square_sequence(length: int, objects: int = 2) -> ArraySequence:
    return ArraySequence(square_frames(length, objects=objects))
