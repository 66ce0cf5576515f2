"""Sequences of frames: the frames of a video or the slices of a volume, read lazily."""

from segany.sequences.array import ArraySequence
from segany.sequences.base import FrameSequence, VolumeInfo

__all__ = ["ArraySequence", "FrameSequence", "VolumeInfo"]
