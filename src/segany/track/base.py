"""One interface for every tracker: prompts on any frame of a `FrameSequence`, masks on every
frame, forward and backward, several objects at once.

    tracker = segany.track.build_tracker(model)          # SAM 2 memory tracker or image-model one
    session = tracker.open(sequence)                      # a segany.sequences.FrameSequence
    result = session.add_prompt(ObjectPrompt(frame=0, object_id=1, points=[[x, y, 1]]))
    for result in session.propagate(start=0):             # forward; reverse=True for backward
        result.masks[1]                                   # (H, W) bool at the frame's size

A correction is one more `add_prompt` on a tracked frame followed by `propagate(start=that
frame)`: propagation resumes from it. Coordinates are pixels of the sequence's frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from segany.sequences.base import FrameSequence


@dataclass
class ObjectPrompt:
    """A person's prompt for one object on one frame.

    frame: frame index; object_id: int >= 1 (0 is the background in every output format);
    points: (N, 3) float64 rows (x, y, label), label 1 foreground / 0 background, or None;
    box: (4,) float64 x0, y0, x1, y1, or None. At least one of points and box is given.
    """

    frame: int
    object_id: int
    points: np.ndarray | None = None
    box: np.ndarray | None = None


@dataclass
class FrameResult:
    """Every tracked object's mask on one frame.

    masks: object id -> (H, W) bool at the frame's size (an object absent from the frame, or
    lost, has an all-False mask); scores: object id -> confidence in [0, 1] that the mask is the
    object (the tracker's own estimate: low when it is lost or occluded).
    """

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)


class TrackingSession(ABC):
    """A tracker at work on one sequence; holds only what its next frames need (memory does not
    grow with the sequence's length)."""

    sequence: FrameSequence

    @abstractmethod
    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        """Add (or, for a frame already prompted for the object, replace) a prompt; returns the
        prompted frame's masks for every object prompted or tracked there."""

    @abstractmethod
    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        """Track every prompted object from frame `start` (default: the earliest prompted frame,
        or the latest for reverse) to the end (frame 0 for reverse), or for `max_frames` frames;
        yields one `FrameResult` per frame, `start` included, in tracking order."""

    @abstractmethod
    def remove_object(self, object_id: int) -> None:
        """Forget an object, its prompts and its results."""

    def close(self) -> None:
        """Release the session's caches (nothing by default)."""
        return None


class Tracker(ABC):
    """Builds sessions on sequences; one tracker per model."""

    name: str

    @abstractmethod
    def open(self, sequence: FrameSequence) -> TrackingSession:
        """A new session on `sequence` (no objects yet)."""
