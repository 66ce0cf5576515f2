"""Label volumes written back in the input's format and geometry, read by the format's usual
reader (nibabel, PIL) and compared voxel for voxel in the input's own array order."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from segany.errors import ConfigError, ImageError
from segany.sequences import (
    ArraySequence,
    LabelVolumeWriter,
    VolumeInfo,
    open_sequence,
    write_label_volume,
)
from sequence_inputs import blob_volume, oblique_affine, write_dicom_series, write_nifti, write_tiff


def thresholded(sequence, object_id: int = 3):
    """(index, labels) of every frame, in reverse: the blob found on the frames' pixels (a
    stand-in for a tracker), so the round trip goes through the read mapping, not around it."""
    for k in reversed(range(len(sequence))):
        yield k, np.where(sequence.rgb(k)[..., 0] > 200, object_id, 0).astype(np.uint8)


@pytest.mark.parametrize("axis", [0, 2])
def test_nifti_labels_land_on_the_input_voxels(tmp_path, axis):
    values, blob = blob_volume()
    source = write_nifti(tmp_path / "ct.nii.gz", values, oblique_affine(), slope=0.5, inter=-10)
    with open_sequence(source, axis=axis, window=(200, 600)) as seq:
        path = write_label_volume(tmp_path / "out", seq.volume, thresholded(seq))
    assert path == tmp_path / "out" / "labels.nii.gz"
    written, original = nib.load(str(path)), nib.load(str(source))
    labels = np.asarray(written.dataobj)
    assert labels.dtype == np.uint8 and labels.shape == values.shape
    assert np.array_equal(labels, np.where(blob, 3, 0))
    assert np.allclose(written.affine, original.affine)
    for code in ("sform_code", "qform_code"):
        assert int(written.header[code]) == int(original.header[code])
    assert np.allclose(written.header.get_zooms(), original.header.get_zooms())


def test_dicom_labels_are_a_nifti_in_series_order_with_its_affine(tmp_path):
    values, blob = blob_volume((10, 14, 18))  # (slices, rows, cols) as the files store them
    geometry = write_dicom_series(tmp_path / "series", values)
    with open_sequence(tmp_path / "series", window=(0, 2000)) as seq:
        info = seq.volume
        path = write_label_volume(tmp_path / "labels.nii", info, thresholded(seq, 7))
    written = nib.load(str(path))
    labels = np.asarray(written.dataobj)  # (cols, rows, slices)
    assert 0 < blob.sum() < blob.size
    assert labels.shape == (18, 14, 10)
    for k in range(10):
        assert np.array_equal(labels[:, :, k].T, np.where(blob[k], 7, 0)), k
    assert np.allclose(written.affine, info.affine)
    assert int(written.header["sform_code"]) == int(written.header["qform_code"]) == 1
    # voxel (0, 0, k) of the label volume sits at slice k's ImagePositionPatient (LPS -> RAS)
    position = geometry["origin"] + 4 * 2.0 * geometry["normal"]
    assert np.allclose(written.affine @ [0, 0, 4, 1], [-position[0], -position[1], position[2], 1])


def test_dicom_label_series_copies_each_slice_geometry(tmp_path):
    values, blob = blob_volume((6, 10, 12))
    write_dicom_series(tmp_path / "series", values)
    with open_sequence(tmp_path / "series", window=(0, 2000)) as seq:
        writer = LabelVolumeWriter(seq.volume, tmp_path / "out")
        for k, labels in thresholded(seq, 5):
            writer.write(k, labels)
    writer.close()
    assert writer.series_dir == tmp_path / "out" / "labels_dicom"
    inputs = {}
    for path in (tmp_path / "series").iterdir():
        ds = pydicom.dcmread(path)
        inputs[tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 3))] = ds
    outputs = sorted(writer.series_dir.iterdir())
    assert len(outputs) == 6
    for k, path in enumerate(outputs):  # k: the slice order along the normal
        ds = pydicom.dcmread(path)
        source = inputs[tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 3))]
        for tag in ("ImageOrientationPatient", "PixelSpacing", "StudyInstanceUID"):
            assert ds[tag].value == source[tag].value
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert np.array_equal(ds.pixel_array, np.where(blob[k], 5, 0))
        assert np.array_equal(source.pixel_array, values[k])  # the same slice
    reread = open_sequence(writer.series_dir, window=(2.5, 5))
    assert len(reread) == 6 and reread.volume.shape == seq.volume.shape
    assert np.allclose(reread.volume.affine, seq.volume.affine)


@pytest.mark.parametrize("axis", [0, 1])
def test_tiff_labels_are_pages(tmp_path, axis):
    values, blob = blob_volume((6, 14, 10))  # (Z, Y, X) pages
    source = write_tiff(tmp_path / "stack.tif", (values.astype(np.uint16) * 40))
    with open_sequence(source, axis=axis, window=(20000, 40000)) as seq:
        path = write_label_volume(tmp_path / "out" / "masks.tiff", seq.volume, thresholded(seq))
    with Image.open(path) as pages:
        assert pages.n_frames == 6
        for k in range(6):
            pages.seek(k)
            assert np.array_equal(np.asarray(pages), np.where(blob[k], 3, 0)), k


def test_writer_bounds_and_errors(tmp_path, monkeypatch):
    info = VolumeInfo("nifti", (4, 5, 6), 1, np.eye(4), (1.0, 1.0, 1.0))
    writer = LabelVolumeWriter(info, tmp_path)
    assert writer.frame_shape == (6, 4)  # axis 1: frame pixel (x, y) is voxel (x, k, y)
    labels = np.zeros((6, 4), np.uint8)
    labels[5, 3] = 9
    writer.write(2, labels)
    for index, bad, match in [
        (5, labels, "out of range"),
        (-1, labels, "out of range"),
        (1.0, labels, "must be an int"),
        (0, labels.T, r"shape \(4, 6\)"),
        (0, labels.astype(float), "integers 0-255"),
        (0, labels.astype(int) + 300, "integers 0-255"),
    ]:
        with pytest.raises(ImageError, match=match):
            writer.write(index, bad)
    volume = np.asarray(nib.load(str(writer.close())).dataobj)
    assert volume[3, 2, 5] == 9 and volume.sum() == 9  # unwritten slices stay background
    with pytest.raises(ConfigError, match="nii or .nii.gz"):
        LabelVolumeWriter(info, tmp_path / "labels.tif")
    with pytest.raises(ConfigError, match="format 'png'"):
        LabelVolumeWriter(VolumeInfo("png", (4, 5, 6), 1, np.eye(4), (1.0,) * 3), tmp_path)
    import segany.sequences.labels as module

    monkeypatch.setattr(module, "MAX_LABEL_BYTES", 119)
    with pytest.raises(ConfigError, match="over the"):
        LabelVolumeWriter(info, tmp_path)


def test_a_failed_run_writes_no_label_volume(tmp_path):
    info = VolumeInfo("tiff", (3, 4, 5), 0, np.eye(4), (1.0, 1.0, 1.0))
    with pytest.raises(RuntimeError), LabelVolumeWriter(info, tmp_path / "out") as writer:
        writer.write(0, np.ones((4, 5), np.uint8))
        raise RuntimeError("tracking stopped")
    assert not (tmp_path / "out" / "labels.tif").exists()


def test_an_array_volume_is_written_in_its_own_order(tmp_path):
    """An `ArraySequence` over a (D, H, W) volume (a square H = W, where a transposed write
    would go unnoticed by shape) writes labels[k] = the labels of frame k."""
    _, blob = blob_volume((5, 12, 12))
    info = VolumeInfo("nifti", blob.shape, 0, np.diag([2.0, 0.5, 0.5, 1.0]), (2.0, 0.5, 0.5))
    seq = ArraySequence(np.where(blob, 255, 0).astype(np.uint8), kind="volume", volume=info)
    assert seq.volume.frame_order == "yx"
    written = nib.load(str(write_label_volume(tmp_path, seq.volume, thresholded(seq))))
    assert np.array_equal(np.asarray(written.dataobj), np.where(blob, 3, 0))
    assert np.allclose(written.affine, info.affine)
    with pytest.raises(ConfigError, match="not 5 of 12x12"):
        ArraySequence(seq._frames, kind="volume", volume=replace(info, axis=2))
