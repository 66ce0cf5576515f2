"""Tracking objects through a `FrameSequence`: one interface for every tracker."""

from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession

__all__ = ["FrameResult", "ObjectPrompt", "Tracker", "TrackingSession"]
