"""Tracking objects through a `FrameSequence`: one interface for every tracker.

`build_tracker(model)` gives SAM 2's memory tracker for SAM 2 models and the image-model
tracker (`segany.track.image_tracker`) for every other model.
"""

from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession
from segany.track.build import build_tracker
from segany.track.config import ImageTrackerConfig

__all__ = [
    "FrameResult",
    "ImageTrackerConfig",
    "ObjectPrompt",
    "Tracker",
    "TrackingSession",
    "build_tracker",
]
