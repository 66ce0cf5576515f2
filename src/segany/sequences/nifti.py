"""NIfTI volumes (`.nii`, `.nii.gz`; nibabel, `segany[volume]`) as `VolumeSequence`s.

The voxel array is memory-mapped, never read whole: a `.nii` in place; a `.nii.gz` is first
decompressed, streaming, to a temporary `.nii` (disk: the volume's uncompressed size; removed
on `close`), because gzip cannot seek backwards and reading slices of a compressed file in
reverse or along another axis would decompress it again for every slice. Planes are read
along any axis, scaled by the header's scl_slope/scl_inter.

Frames: axis 2 (the last, usually axial) by default; frame pixel (x, y) of slice k is voxel
(x, y, k) for axis 2, (k, x, y) for axis 0, (x, k, y) for axis 1 (`segany.sequences.layout`).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import weakref
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segany.errors import ConfigError, ImageError
from segany.sequences.base import VolumeInfo
from segany.sequences.layout import check_axis, plane_index
from segany.sequences.volume import VolumeReader, VolumeSequence


def import_nibabel() -> Any:
    """The `nibabel` module, or a `ConfigError` that says how to install it."""
    try:
        import nibabel
    except ImportError as e:
        raise ConfigError(
            f'reading NIfTI volumes needs nibabel ({e}); pip install "segany[volume]"'
        ) from None
    return nibabel


def _load(nib: Any, path: Path) -> Any:
    try:
        return nib.load(str(path))
    except FileNotFoundError:
        raise ImageError(f"NIfTI file not found: {path}") from None
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as e:
        raise ImageError(
            f"cannot read NIfTI {path}: {e} (a corrupt or partly copied file?)"
        ) from None


def _volume_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The 3-D shape of a NIfTI image of `shape`; `ImageError` for 2-D, or 4-D and more with
    several volumes."""
    if len(shape) < 3:
        raise ImageError(
            f"{path} is a {len(shape)}-D NIfTI image {shape}, not a volume: open it as an image "
            "or give a 3-D volume"
        )
    if any(s != 1 for s in shape[3:]):
        raise ImageError(
            f"{path} holds {int(np.prod(shape[3:]))} volumes (shape {shape}): extract one 3-D "
            "volume first (e.g. nibabel's img.slicer[..., t])"
        )
    return tuple(int(s) for s in shape[:3])


class NiftiReader(VolumeReader):
    """The voxel values of a NIfTI file, memory-mapped (`.nii.gz` via a temporary `.nii`)."""

    lazy_axis = 2

    def __init__(self, path: Path) -> None:
        nib = import_nibabel()
        self.name = str(path)
        self._tmp: str | None = None
        image = _load(nib, path)
        self.header = image.header
        self.affine = np.asarray(image.affine, dtype=np.float64)
        self.shape = _volume_shape(path, tuple(image.shape))
        dtype = image.get_data_dtype()
        if dtype.fields is not None or dtype.kind not in "biuf":
            raise ImageError(f"{path} holds {dtype} voxels; give a volume of grey values")
        if path.name.lower().endswith(".gz"):
            image = _load(nib, self._decompress(path, image))
        proxy = image.dataobj
        try:
            unscaled = proxy.get_unscaled()  # a memmap for an uncompressed file
        except (OSError, ValueError, EOFError) as e:
            raise ImageError(f"cannot read the voxels of {path}: {e} (a truncated file?)") from None
        self._voxels = unscaled.reshape(self.shape, order="F")  # (X, Y, Z), a view
        slope, inter = proxy.slope, proxy.inter
        scaled = (slope, inter) != (1.0, 0.0)
        self._scale = (np.float32(slope), np.float32(inter)) if scaled else None

    def _decompress(self, path: Path, image: Any) -> Path:
        """`path` (gzip) decompressed to a temporary `.nii`, streaming; its path."""
        nbytes = int(np.prod(image.shape, dtype=np.int64)) * image.get_data_dtype().itemsize
        self._tmp = tempfile.mkdtemp(prefix="segany-nifti-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        free = shutil.disk_usage(self._tmp).free
        if nbytes + 2**20 > free:
            self.close()
            raise ImageError(
                f"{path} needs {nbytes / 2**20:.0f} MiB of temporary disk to be read slice by "
                f"slice, {free / 2**20:.0f} MiB free: free space in {tempfile.gettempdir()} or "
                "give the uncompressed .nii"
            )
        target = Path(self._tmp) / "volume.nii"
        try:
            with gzip.open(path, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 2**22)
        except (OSError, EOFError, zlib.error) as e:
            self.close()
            raise ImageError(
                f"cannot decompress {path}: {e} (a corrupt or partly copied file?)"
            ) from None
        return target

    def read_plane(self, axis: int, index: int) -> np.ndarray:
        plane = np.asarray(self._voxels[plane_index(axis, index)])
        if self._scale is not None:
            plane = plane.astype(np.float32) * self._scale[0] + self._scale[1]
        return plane

    def read_lazy(self, index: int) -> np.ndarray:
        return self.read_plane(self.lazy_axis, index)

    def close(self) -> None:
        super().close()
        self._voxels = None
        if self._tmp is not None:
            self._cleanup()
            self._tmp = None


def open_nifti(
    path: Path, axis: int | None = None, window: str | Sequence[float] | None = None
) -> VolumeSequence:
    """The slices of the NIfTI volume at `path` along `axis` (default 2, the last) as a
    `VolumeSequence` whose `volume` holds the file's affine and voxel sizes.

    Raises `ImageError` for a missing, corrupt, 2-D or multi-volume file or a slice over
    `MAX_SLICE_PIXELS`, `ConfigError` for a bad axis or window.
    """
    reader = NiftiReader(path)
    try:
        info = VolumeInfo(
            format="nifti",
            shape=reader.shape,
            axis=check_axis(axis, 3, default=2),
            affine=reader.affine,
            spacing=tuple(float(z) for z in reader.header.get_zooms()[:3]),
            source=os.path.abspath(path),
        )
        return VolumeSequence(reader, info, window)
    except Exception:
        reader.close()
        raise
