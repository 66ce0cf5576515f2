"""Where a frame's pixels sit in a volume: the one mapping between slice pixels and voxels
that reading a volume and writing its labels back both use.

A volume is a 3-D array as its file stores it (`VolumeInfo.shape`), sliced along `axis`;
frame k is the plane `axis = k`. Its two other axes p < q become the frame's pixels, in one
of two orders (`VolumeInfo.frame_order`, "" meaning the format's own):

- "xy", NIfTI's and DICOM's: arrays stored x-first, (X, Y, Z) (for DICOM: column, row,
  slice). Frame pixel (x, y) is voxel[p] = x, voxel[q] = y, so the frame is the plane
  transposed (H = shape[q], W = shape[p]). Axial frames (axis 2) of a DICOM series are its
  images as stored; the display orientation (radiological or not) is not adjusted.
- "yx", TIFF's (and any NumPy stack of images, `ArraySequence`): arrays stored page-first,
  (Z, Y, X). Frame pixel (x, y) is voxel[p] = y, voxel[q] = x (H = shape[p], W = shape[q]):
  page k is frame k as stored.
"""

from __future__ import annotations

import numpy as np

from segany.errors import ConfigError
from segany.sequences.base import VolumeInfo

# Formats whose arrays are stored x-first: frames are their planes transposed.
X_FIRST_FORMATS = ("nifti", "dicom")
FRAME_ORDERS = ("xy", "yx")


def frame_order(info: VolumeInfo) -> str:
    """The frame order of `info`, "xy" or "yx" (its own, else its format's); `ConfigError`
    for any other."""
    order = info.frame_order or ("xy" if info.format in X_FIRST_FORMATS else "yx")
    if order not in FRAME_ORDERS:
        raise ConfigError(f'a frame order is "xy" or "yx", got {info.frame_order!r}')
    return order


def check_axis(axis: int | None, ndim: int, default: int) -> int:
    """`axis` (None: `default`; negative counts from the end) as 0 <= axis < ndim, else a
    `ConfigError`."""
    if axis is None:
        return default
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not -ndim <= axis < ndim:
        raise ConfigError(
            f"axis must be an int from {-ndim} to {ndim - 1} for a {ndim}-D volume, got {axis!r}"
        )
    return int(axis) % ndim


def plane_index(axis: int, index: int) -> tuple:
    """The index tuple selecting plane `index` along `axis` of a 3-D array."""
    return tuple(index if a == axis else slice(None) for a in range(3))


def frame_size(order: str, shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """(H, W) of the frames, in `order`, of a volume of stored `shape` sliced along `axis`."""
    p, q = (int(shape[a]) for a in range(3) if a != axis)
    return (q, p) if order == "xy" else (p, q)


def plane_to_frame(order: str, plane: np.ndarray) -> np.ndarray:
    """A plane (2-D, the stored array's remaining axes in order) -> the frame, (H, W)."""
    return plane.T if order == "xy" else plane


def frame_to_plane(order: str, frame: np.ndarray) -> np.ndarray:
    """A frame (H, W) -> the plane to store at its index (the inverse of `plane_to_frame`)."""
    return frame.T if order == "xy" else frame
