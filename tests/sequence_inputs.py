"""Small inputs of every kind `open_sequence` reads, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import av  # segany[video], part of segany[dev]
import nibabel as nib  # segany[volume], part of segany[dev]
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def moving_frames(n: int, h: int = 24, w: int = 32) -> np.ndarray:
    """(n, h, w, 3) uint8: a gradient background with a square moving right."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t] = np.stack([(xx * 7 + t) % 256, yy * 9 % 256, (xx + yy) * 3 % 256], -1)
        frames[t, 4:12, 2 + t % (w - 10) : 10 + t % (w - 10)] = (250, 30, 30)
    return frames


def write_video(path: Path, frames: np.ndarray, codec="ffv1", pix_fmt="bgr0", **options) -> Path:
    """`frames` (T, H, W, 3) uint8 encoded at 10 frames/s."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def counter_video(path: Path, n: int) -> Path:
    """An H.264 video of n 16x16 frames whose grey level encodes the frame number: frame t is
    flat at 40 + 8 * (t % 24) (lossy coding keeps a flat frame within a few levels)."""
    frames = np.empty((n, 16, 16, 3), np.uint8)
    frames[:] = (40 + 8 * (np.arange(n) % 24)).astype(np.uint8)[:, None, None, None]
    return write_video(path, frames, "libx264", "yuv420p", g="25", preset="ultrafast")


def blob_volume(shape=(20, 16, 12)) -> tuple[np.ndarray, np.ndarray]:
    """(values int16, blob bool) of `shape`: noise-free background 0..99 and a bright blob
    (1000) off-centre, asymmetric so that a flipped or transposed read shows."""
    grid = np.indices(shape)
    values = ((grid[0] * 3 + grid[1] * 5 + grid[2] * 7) % 100).astype(np.int16)
    centre = [s * f for s, f in zip(shape, (0.3, 0.6, 0.4), strict=True)]
    radii = [s * f for s, f in zip(shape, (0.2, 0.25, 0.3), strict=True)]
    blob = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
    values[blob] = 1000
    return values, blob


def oblique_affine() -> np.ndarray:
    """A non-identity NIfTI affine: anisotropic voxels, a rotation about z, an offset."""
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.8, 0.9, 2.5])
    affine[:3, 3] = (-40.0, 12.5, 7.0)
    return affine


def write_nifti(path: Path, values: np.ndarray, affine: np.ndarray, **scaling) -> Path:
    image = nib.Nifti1Image(values, affine)
    image.set_sform(affine, code=2)
    image.set_qform(affine, code=1)
    if scaling:
        image.header.set_slope_inter(scaling["slope"], scaling["inter"])
    nib.save(image, str(path))
    return path


def write_dicom_series(folder: Path, pixels: np.ndarray, spacing=(0.7, 0.6, 2.0)) -> dict:
    """`pixels` (Z, rows, cols) int16 stored values as a CT series, one file per slice,
    RescaleSlope 2 and RescaleIntercept -1024 (so HU = 2 * stored - 1024), an oblique
    orientation, files named so that name order is not slice order. Returns the geometry."""
    folder.mkdir()
    row_dir = np.array([np.cos(0.2), np.sin(0.2), 0.0])
    col_dir = np.array([0.0, 0.0, -1.0])  # a coronal-ish orientation
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-50.0, 20.0, 30.0])
    series, study, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    for k in range(pixels.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
        ds.PatientID, ds.FrameOfReferenceUID = "segany-test", frame_of_reference
        ds.InstanceNumber = pixels.shape[0] - k  # reversed: positions, not numbers, decide
        ds.ImageOrientationPatient = [*row_dir, *col_dir]
        ds.ImagePositionPatient = [*(origin + k * spacing[2] * normal)]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing, column spacing
        ds.SliceThickness = spacing[2]
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
        ds.Rows, ds.Columns = pixels.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels[k].astype("<i2").tobytes()
        ds.save_as(folder / f"img{(k * 7) % pixels.shape[0]:03d}_{k}.dcm", enforce_file_format=True)
    return {"row_dir": row_dir, "col_dir": col_dir, "normal": normal, "origin": origin}


def write_tiff(path: Path, pages: np.ndarray) -> Path:
    """Pages (Z, H, W[, 3]) uint8 or uint16 as a multi-page TIFF."""
    images = [Image.fromarray(p) for p in pages]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path
