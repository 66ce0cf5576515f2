"""`FrameSequence`: the frames of a video or the slices of a volume, read one at a time.

Every input `segany track`, `segany eval` and the annotator take as a sequence (a video file, a
folder of frames, a multi-page TIFF, a NIfTI volume, a DICOM series) is opened as a
`FrameSequence` (`segany.sequences.open_sequence`). Frames are decoded when asked for, never all
at once, so memory does not grow with the sequence's length.

Frame coordinates: pixel (x, y) of a frame, x to the right and y down, origin at the top-left
pixel's corner; every frame of a sequence has the same `height` x `width`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from segany.errors import ImageError


@dataclass(frozen=True)
class VolumeInfo:
    """Where a volume's slices sit in space, so that a label volume can be written back with the
    input's geometry.

    format: "nifti", "dicom" or "tiff" (the input's own format, also the label volume's);
    shape: the volume's array shape as stored (e.g. NIfTI's (X, Y, Z)); axis: the array axis the
    slices are taken along; affine: (4, 4) float64 voxel -> world (NIfTI's affine; for DICOM the
    one built from ImagePositionPatient, ImageOrientationPatient and PixelSpacing; identity
    with the spacing for TIFF); spacing: voxel size along each array axis, in mm where known;
    source: the input's path ("" if none), from which a label writer copies what else the
    format keeps (NIfTI's sform/qform codes and units); frame_order: how frame pixels map to
    the two other axes p < q: "xy" (pixel x along p, y along q: x-first arrays, NIfTI's and
    DICOM's), "yx" (y along p, x along q: row-major arrays, TIFF pages, NumPy images) or ""
    for the format's own ("xy" for "nifti" and "dicom", "yx" for "tiff"); see
    `segany.sequences.layout`.
    """

    format: str
    shape: tuple[int, ...]
    axis: int
    affine: np.ndarray
    spacing: tuple[float, ...]
    source: str = ""
    frame_order: str = ""


class FrameSequence(ABC):
    """`len(sequence)` frames, each `sequence.rgb(i)` an (H, W, 3) uint8 RGB array.

    Attributes:
        height, width: every frame's size in pixels.
        kind: "video" (a video file, a folder of frames, a multi-page TIFF of pictures) or
            "volume" (slices of a 3-D image: NIfTI, DICOM, a TIFF stack read as a volume).
        volume: a `VolumeInfo` for volumes, else None.
        fps: frames per second where the input says (video files), else None.
    """

    kind: str = "video"
    volume: VolumeInfo | None = None
    fps: float | None = None

    def __init__(self) -> None:
        self.height = 0
        self.width = 0

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames (or slices)."""

    @abstractmethod
    def read_rgb(self, index: int) -> np.ndarray:
        """Frame `index` (already range-checked): (H, W, 3) uint8 RGB."""

    def name(self, index: int) -> str:
        """The frame's file stem for outputs: the input file's stem for a folder of frames,
        else its number zero-padded to 5 digits ("00042")."""
        return f"{self.check_index(index):05d}"

    def close(self) -> None:
        """Release files or decoders held open (nothing by default)."""
        return None

    def check_index(self, index: int) -> int:
        """`index` as an int, or `ImageError` if it is not a frame of this sequence."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ImageError(f"a frame index must be an int, got {type(index).__name__}")
        if not 0 <= index < len(self):
            raise ImageError(f"frame {index} is out of range: the sequence has {len(self)} frames")
        return int(index)

    def rgb(self, index: int) -> np.ndarray:
        """Frame `index`: (H, W, 3) uint8 RGB. The array may be the sequence's cached copy
        (then read-only): copy it before changing it. A sequence is read by one thread at a
        time (decoders keep a position); threads sharing one hold a lock around `rgb`."""
        return self.read_rgb(self.check_index(index))

    def __enter__(self) -> FrameSequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
