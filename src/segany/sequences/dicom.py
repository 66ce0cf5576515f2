"""A DICOM series folder (pydicom, `segany[volume]`) as a `VolumeSequence`.

Opening reads every file's header (not its pixels): files that are not DICOM, or carry no
image, are skipped; one series is expected. Slices are sorted by ImagePositionPatient projected
on the slice normal (the cross product of ImageOrientationPatient's row and column directions),
or by InstanceNumber where positions are missing. Each slice's pixels are read when asked and
scaled by its RescaleSlope/RescaleIntercept (CT: Hounsfield units).

The volume is stored x-first as (X, Y, Z) = (column, row, slice), like NIfTI, so that the
affine and the label volume follow NIfTI's convention: `VolumeInfo.affine` maps (column, row,
slice) to RAS+ world mm (DICOM's LPS patient frame with x and y negated). Frames along axis 2
(the default, the acquisition axis) are the images as stored, one file read per frame. Axes 0
and 1 read the whole series once into memory as float32 (4 bytes a voxel, at most
`MAX_VOLUME_BYTES`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segany.errors import ConfigError, ImageError
from segany.sequences.base import VolumeInfo
from segany.sequences.layout import check_axis
from segany.sequences.volume import VolumeReader, VolumeSequence

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def import_pydicom() -> Any:
    """The `pydicom` module, or a `ConfigError` that says how to install it."""
    try:
        import pydicom
    except ImportError as e:
        raise ConfigError(
            f'reading DICOM series needs pydicom ({e}); pip install "segany[volume]"'
        ) from None
    return pydicom


def is_dicom_file(path: Path) -> bool:
    """Whether `path` starts like a DICOM file (a .dcm suffix, or "DICM" after the preamble)."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def series_headers(pydicom: Any, folder: Path) -> list[tuple[Path, Any]]:
    """(path, header) of every image file of the folder's one series."""
    found = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name.startswith(".") or not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
            continue  # not DICOM (a README, a thumbnail) or a damaged file: not a slice
        if "Rows" in ds and "Columns" in ds:
            found.append((path, ds))
    if not found:
        raise ImageError(f"no DICOM images in {folder}: give the folder of one DICOM series")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in found}
    if len(series) > 1:
        raise ImageError(
            f"{folder} holds {len(series)} DICOM series; give a folder with one series "
            "(move each series to its own folder)"
        )
    return found


def sort_series(folder: Path, found: list[tuple[Path, Any]]) -> tuple[list, np.ndarray]:
    """The slices in order along the normal, and the LPS affine of (column, row, slice)."""
    first = found[0][1]
    rows, cols = int(first.Rows), int(first.Columns)
    for path, ds in found:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise ImageError(
                f"{path.name} is {ds.Columns}x{ds.Rows} but {found[0][0].name} is {cols}x{rows}:"
                " a series' slices must have one size"
            )
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ImageError(
                f"{path.name} is a multi-frame DICOM; give a series of single-frame files"
            )
    dy, dx = (float(v) for v in first.get("PixelSpacing", (1.0, 1.0)))
    positioned = all("ImagePositionPatient" in ds for _, ds in found)
    if positioned and "ImageOrientationPatient" in first:
        iop = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
        row_dir, col_dir = iop[:3], iop[3:]
        normal = np.cross(row_dir, col_dir)
        positions = [np.asarray(ds.ImagePositionPatient, dtype=np.float64) for _, ds in found]
        order = np.argsort([float(p @ normal) for p in positions], kind="stable")
        found = [found[i] for i in order]
        positions = [positions[i] for i in order]
        along = [float(p @ normal) for p in positions]
        if len(set(np.round(along, 4))) != len(along):
            raise ImageError(
                f"{folder} has two slices at one position (several echoes, phases or "
                "acquisitions?): give a folder of one 3-D series"
            )
        origin = positions[0]
        if len(found) > 1:
            step = (positions[-1] - positions[0]) / (len(found) - 1)
        else:
            step = normal * float(first.get("SliceThickness", 1.0) or 1.0)
    else:  # no geometry: InstanceNumber order, voxel sizes only
        found = sorted(found, key=lambda f: int(f[1].get("InstanceNumber", 0) or 0))
        row_dir, col_dir, origin = np.eye(3)[0], np.eye(3)[1], np.zeros(3)
        thickness = first.get("SpacingBetweenSlices", first.get("SliceThickness", 1.0))
        step = np.eye(3)[2] * float(thickness or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * dx  # column index: along a row
    affine[:3, 1] = col_dir * dy  # row index: down a column
    affine[:3, 2] = step
    affine[:3, 3] = origin
    return found, affine


class DicomReader(VolumeReader):
    """The slices of one DICOM series, one file read per slice, rescaled to float32."""

    lazy_axis = 2

    def __init__(self, folder: Path) -> None:
        self._pydicom = import_pydicom()
        self.name = str(folder)
        found, lps = sort_series(folder, series_headers(self._pydicom, folder))
        self.paths = [path for path, _ in found]
        first = found[0][1]
        self.shape = (int(first.Columns), int(first.Rows), len(found))  # (X, Y, Z)
        self.affine = _LPS_TO_RAS @ lps
        self.spacing = tuple(float(np.linalg.norm(lps[:3, a])) for a in range(3))

    def read_lazy(self, index: int) -> np.ndarray:
        """Slice `index`: (X, Y) = (columns, rows) float32, rescaled."""
        path = self.paths[index]
        try:
            ds = self._pydicom.dcmread(path)
            pixels = ds.pixel_array  # (rows, cols)
        except (OSError, EOFError, ValueError, AttributeError, RuntimeError) as e:
            raise ImageError(
                f"cannot read the pixels of {path}: {e} (compressed DICOM may need "
                "pylibjpeg or gdcm installed)"
            ) from None
        if pixels.shape != (self.shape[1], self.shape[0]):
            raise ImageError(f"{path} holds pixels of shape {pixels.shape}, not one grey slice")
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        return (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T


def open_dicom(
    folder: Path, axis: int | None = None, window: str | Sequence[float] | None = None
) -> VolumeSequence:
    """The slices of the DICOM series in `folder` along `axis` (default 2, the acquisition
    axis; 0 and 1 read the series into memory) as a `VolumeSequence` whose `volume` holds the
    series' RAS affine and voxel sizes (`format` "dicom").

    Raises `ImageError` for a folder without one consistent series, `ConfigError` for a bad
    axis or window.
    """
    reader = DicomReader(folder)
    info = VolumeInfo(
        format="dicom",
        shape=reader.shape,
        axis=check_axis(axis, 3, default=2),
        affine=reader.affine,
        spacing=reader.spacing,
        source=os.path.abspath(folder),
    )
    return VolumeSequence(reader, info, window)
