"""Sequences of frames: the frames of a video or the slices of a volume, read lazily.

`open_sequence(path)` opens any input (video file, folder of frames, multi-page TIFF, NIfTI,
DICOM series); `ArraySequence` holds frames in memory; `write_label_volume` and
`LabelVolumeWriter` write a volume's labels back in its own format and geometry.
"""

from segany.sequences.array import ArraySequence
from segany.sequences.base import FrameSequence, VolumeInfo
from segany.sequences.labels import LabelVolumeWriter, label_volume_path, write_label_volume
from segany.sequences.open import open_sequence
from segany.sequences.window import WINDOW_PRESETS, parse_window

__all__ = [
    "WINDOW_PRESETS",
    "ArraySequence",
    "FrameSequence",
    "LabelVolumeWriter",
    "VolumeInfo",
    "label_volume_path",
    "open_sequence",
    "parse_window",
    "write_label_volume",
]
