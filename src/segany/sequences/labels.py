"""Label volumes: the per-slice labels of a volume written back in the input's format, with
its geometry, so that a viewer overlays them on the input voxel for voxel.

- NIfTI input: a NIfTI (`labels.nii.gz` by default) with the input's affine, its sform and
  qform codes, voxel sizes and units (the input's header, uint8, no scaling).
- DICOM input: a NIfTI (`labels.nii.gz`) in the series' (column, row, slice) order with the
  RAS affine derived from ImagePositionPatient, ImageOrientationPatient and PixelSpacing
  (sform and qform code 1, scanner), readable by nibabel, ITK-SNAP, 3D Slicer and FSL; and
  beside it a DICOM label series, `<name>_dicom/` (`labels_dicom/` for `labels.nii.gz`), one
  file per input slice with its headers (`segany.sequences.dicom_labels`; not DICOM SEG).
- TIFF input: a multi-page uint8 TIFF (`labels.tif`), page k the labels of page k.

Slices map to voxels as `segany.sequences.layout` says. Memory: the writer holds the whole
label volume, one byte a voxel (13 MB for 256x256x200), at most `MAX_LABEL_BYTES`; slices
never written stay 0 (background).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from segany.errors import ConfigError, ImageError
from segany.sequences.base import VolumeInfo
from segany.sequences.layout import frame_order, frame_size, frame_to_plane, plane_index

MAX_LABEL_BYTES = 2 * 2**30
_SUFFIXES = {"nifti": (".nii", ".nii.gz"), "dicom": (".nii", ".nii.gz"), "tiff": (".tif", ".tiff")}
_DEFAULT_NAMES = {"nifti": "labels.nii.gz", "dicom": "labels.nii.gz", "tiff": "labels.tif"}


def label_volume_path(out_path: str | os.PathLike, volume: VolumeInfo) -> Path:
    """Where the label volume of `volume` goes: `out_path` itself if it names a file of the
    format (.nii/.nii.gz for NIfTI and DICOM, .tif/.tiff for TIFF), else the default name
    (`labels.nii.gz`, `labels.tif`) inside the folder `out_path` (created if missing)."""
    if volume.format not in _SUFFIXES:
        raise ConfigError(f"cannot write labels for a volume of format {volume.format!r}")
    out = Path(out_path)
    lower = out.name.lower()
    if out.is_dir() or not any(lower.endswith(s) for s in (".nii", ".nii.gz", ".tif", ".tiff")):
        out.mkdir(parents=True, exist_ok=True)
        return out / _DEFAULT_NAMES[volume.format]
    if not lower.endswith(_SUFFIXES[volume.format]):
        raise ConfigError(
            f"a label volume for a {volume.format} input is written as "
            f"{' or '.join(_SUFFIXES[volume.format])}, not {out.name}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


class LabelVolumeWriter:
    """Collects (H, W) label slices of `volume` (frame index along `volume.axis`, the frames
    of the sequence it was read as) and writes the label volume on `close()`.

    Raises `ConfigError` for a `VolumeInfo` of an unknown format or over `MAX_LABEL_BYTES`,
    `ImageError` for a slice of the wrong index, shape or values.
    """

    def __init__(self, volume: VolumeInfo, out_path: str | os.PathLike) -> None:
        shape = tuple(int(s) for s in volume.shape)
        if len(shape) != 3:
            raise ConfigError(f"a label volume is 3-D, got shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64))
        if nbytes > MAX_LABEL_BYTES:
            raise ConfigError(
                f"a {shape} label volume needs {nbytes / 2**30:.1f} GiB of memory, over the "
                f"{MAX_LABEL_BYTES / 2**30:.0f} GiB limit: write per-slice PNGs instead"
            )
        self.volume = volume
        self.order = frame_order(volume)
        self.path = label_volume_path(out_path, volume)
        self.frame_shape = frame_size(self.order, shape, volume.axis)
        self.labels = np.zeros(shape, dtype=np.uint8)  # as the input stores its voxels
        self.closed = False
        # DICOM inputs also get a label series beside the NIfTI (see the module's notes).
        self.series_dir = None
        if volume.format == "dicom" and volume.source:  # the series' headers are copied
            stem = self.path.name.split(".")[0]
            self.series_dir = self.path.with_name(f"{stem}_dicom")

    def write(self, index: int, labels: np.ndarray) -> None:
        """Frame `index`'s labels: (H, W) integers 0-255 (0 background, else object id)."""
        n = self.volume.shape[self.volume.axis]
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ImageError(f"a slice index must be an int, got {type(index).__name__}")
        if not 0 <= index < n:
            raise ImageError(f"slice {index} is out of range: the volume has {n} slices")
        labels = np.asarray(labels)
        if labels.shape != self.frame_shape:
            raise ImageError(
                f"labels of slice {index} have shape {labels.shape}, the frames {self.frame_shape}"
            )
        if labels.dtype.kind not in "biu" or (
            labels.size and (labels.min() < 0 or labels.max() > 255)
        ):
            raise ImageError(f"labels must be integers 0-255, got {labels.dtype} values")
        plane = frame_to_plane(self.order, labels.astype(np.uint8, copy=False))
        self.labels[plane_index(self.volume.axis, int(index))] = plane

    def close(self) -> Path:
        """Write the label volume (once, and for DICOM the label series in `series_dir`); the
        label volume's path."""
        if not self.closed:
            if self.volume.format == "tiff":
                _write_tiff(self.path, self.labels)
            else:
                _write_nifti(self.path, self.labels, self.volume)
            if self.series_dir is not None:
                from segany.sequences.dicom_labels import write_dicom_labels

                write_dicom_labels(self.series_dir, self.labels, self.volume)
            self.closed = True
        return self.path

    def __enter__(self) -> LabelVolumeWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:  # a failed run leaves no half-written label volume
            self.close()


def write_label_volume(
    out_path: str | os.PathLike,
    volume: VolumeInfo,
    slices: Iterable[tuple[int, np.ndarray]],
) -> Path:
    """Write the label volume of `volume` from `slices`, (frame index, (H, W) uint8 labels)
    pairs in any order (a frame given twice: the last wins); the path written. See
    `LabelVolumeWriter` and the module's notes for the format and the memory bound."""
    writer = LabelVolumeWriter(volume, out_path)
    for index, labels in slices:
        writer.write(index, labels)
    return writer.close()


def _write_tiff(path: Path, labels: np.ndarray) -> None:
    pages = [Image.fromarray(np.ascontiguousarray(page)) for page in labels]  # (Y, X) each
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="tiff_deflate")


def _write_nifti(path: Path, labels: np.ndarray, volume: VolumeInfo) -> None:
    from segany.sequences.nifti import import_nibabel

    nib = import_nibabel()
    affine = np.asarray(volume.affine, dtype=np.float64)
    source = Path(volume.source) if volume.source else None
    if volume.format == "nifti" and source is not None and source.is_file():
        header = nib.load(str(source)).header  # the header only: its codes, units, zooms
        image = nib.Nifti1Image(labels, affine, header=header)
        image.set_sform(header.get_sform(), code=int(header["sform_code"]))
        image.set_qform(header.get_qform(), code=int(header["qform_code"]))
        image.header.set_xyzt_units(*header.get_xyzt_units())
    else:
        image = nib.Nifti1Image(labels, affine)
        image.set_sform(affine, code=1)  # scanner coordinates
        image.set_qform(affine, code=1)
        image.header.set_xyzt_units("mm")
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    image.header["descrip"] = b"segany labels"
    image.header["cal_min"], image.header["cal_max"] = 0, int(labels.max())
    nib.save(image, str(path))
