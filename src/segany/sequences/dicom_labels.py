"""A DICOM label series: one file per slice of the input series, with its geometry and study.

Each file copies the header of the input slice it labels (patient, study, frame of reference,
ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SOP class) with a new series and
instance UIDs, "segany labels" as SeriesDescription, DERIVED\\SECONDARY as ImageType, and 16-bit
unsigned pixels holding the object ids (0 background), uncompressed (Explicit VR Little
Endian), without rescale or window. A DICOM viewer overlays it on the input slice for slice;
it is not a DICOM SEG object.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segany.errors import ImageError
from segany.sequences.base import VolumeInfo
from segany.sequences.dicom import import_pydicom, series_headers, sort_series

# Tags of the input that do not describe the label pixels.
_DROPPED = (
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "RescaleType",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)


def write_dicom_labels(folder: Path, labels: np.ndarray, volume: VolumeInfo) -> Path:
    """Write `labels` ((X, Y, Z) = (column, row, slice) uint8, the input series' order) as a
    DICOM series in `folder` (created), one file per slice of the series `volume.source`;
    the folder."""
    pydicom = import_pydicom()
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    source = Path(volume.source)
    if not volume.source or not source.is_dir():
        raise ImageError(
            f"the DICOM series {volume.source!r} is gone: its label series copies its headers"
        )
    found, _ = sort_series(source, series_headers(pydicom, source))
    if len(found) != labels.shape[2]:
        raise ImageError(
            f"{source} now holds {len(found)} slices, the labels {labels.shape[2]}: the series "
            "changed since it was read"
        )
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    for k, (path, ds) in enumerate(found):
        for keyword in _DROPPED:
            if keyword in ds:
                delattr(ds, keyword)
        instance_uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = instance_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID = series_uid
        ds.SeriesDescription = "segany labels"
        ds.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + 1000
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(labels[:, :, k].T).astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"  # 16-bit words; the header was read without pixels
        ds.save_as(folder / f"{k:05d}_{path.stem}.dcm", enforce_file_format=True)
    return folder
