"""`open_sequence` on every input kind (each written here), read back frame for frame; lazy
decoding; windows; bad inputs give typed errors that say what to do."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

import segany
from segany.errors import ConfigError, ImageError
from segany.sequences import ArraySequence, FrameSequence, open_sequence, parse_window
from segany.sequences.window import apply_window
from segany.video.frames import open_frames
from segany.video.sequence_frames import SequenceFrames
from sequence_inputs import (
    blob_volume,
    counter_video,
    moving_frames,
    oblique_affine,
    write_dicom_series,
    write_nifti,
    write_tiff,
    write_video,
)


def frames_of(sequence: FrameSequence) -> np.ndarray:
    return np.stack([sequence.rgb(i) for i in range(len(sequence))])


def test_array_sequence():
    frames = moving_frames(4)
    seq = ArraySequence(frames, names=["a", "b", "c", "d"])
    assert (len(seq), seq.height, seq.width, seq.kind, seq.volume) == (4, 24, 32, "video", None)
    assert np.array_equal(frames_of(seq), frames) and seq.name(2) == "c"
    grey = ArraySequence(frames[..., 0])  # (T, H, W) -> RGB
    assert np.array_equal(grey.rgb(1), np.repeat(frames[1, ..., :1], 3, axis=2))
    assert grey.name(3) == "00003"
    with pytest.raises(ImageError, match="out of range"):
        seq.rgb(4)
    with pytest.raises(ImageError, match="one size"):
        ArraySequence([frames[0], frames[1, :10]])
    with pytest.raises(ImageError, match="uint8"):
        ArraySequence(frames.astype(np.float32))
    with pytest.raises(ImageError, match="at least one"):
        ArraySequence([])
    with pytest.raises(ConfigError, match="names"):
        ArraySequence(frames, names=["a"])


def test_lossless_video_frame_for_frame(tmp_path):
    frames = moving_frames(12)
    with open_sequence(write_video(tmp_path / "clip.mkv", frames)) as seq:
        assert (len(seq), seq.height, seq.width, seq.kind, seq.fps) == (12, 24, 32, "video", 10.0)
        for i in [*range(12), 3, 11, 0, 7]:
            assert np.array_equal(seq.rgb(i), frames[i]), i
        assert seq.name(7) == "00007"


def test_mp4_of_1000_frames_is_decoded_lazily(tmp_path):
    """A 1,000-frame H.264 video: opening decodes one frame; reading in any order keeps at
    most the byte budget's frames; every frame is the right one."""
    seq = open_sequence(counter_video(tmp_path / "long.mp4", 1000))
    assert isinstance(seq, segany.sequences.video.VideoSequence)
    assert (len(seq), seq.height, seq.width, seq.fps) == (1000, 16, 16, 10.0)
    assert seq.decoder.cached_frames == 1  # frame 0, for the resolution
    seq.close()
    seq = segany.sequences.video.VideoSequence(tmp_path / "long.mp4", cache_bytes=8 * 16 * 16 * 3)
    order = [*range(0, 1000, 3), *range(999, 900, -1), 500, 12, 640]
    for i in order:
        level = int(seq.rgb(i)[8, 8, 0])
        assert abs(level - (40 + 8 * (i % 24))) <= 3, (i, level)
        assert seq.decoder.cached_frames <= 8
    seq.close()


def test_frame_folder_natural_order_and_stems(tmp_path):
    frames = moving_frames(4)
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["f10.png", "f2.jpg", "f1.bmp", "F3.tif"]  # natural order: f1, f2, F3, f10
    for name, frame in zip(names, frames[[3, 1, 0, 2]], strict=True):
        Image.fromarray(frame).save(folder / name, quality=100, subsampling=0)
    (folder / "notes.txt").write_text("not a frame")
    seq = open_sequence(folder)
    assert [seq.name(i) for i in range(4)] == ["f1", "f2", "F3", "f10"]
    assert np.array_equal(seq.rgb(0), frames[0]) and np.array_equal(seq.rgb(3), frames[3])
    assert np.abs(seq.rgb(1).astype(int) - frames[1]).max() <= 12  # the JPEG
    Image.fromarray(frames[0, :20]).save(folder / "f11.png")
    seq = open_sequence(folder)
    with pytest.raises(ImageError, match=r"f11.png is 32x20 .* first frame \(f1.bmp\) is 32x24"):
        seq.rgb(4)
    Image.fromarray(frames[0]).save(folder / "f1.png")
    with pytest.raises(ImageError, match="share a name"):
        open_sequence(folder)


def test_multipage_tiff_pictures_and_16_bit_volume(tmp_path):
    frames = moving_frames(5)
    seq = open_sequence(write_tiff(tmp_path / "clip.tif", frames))
    assert (seq.kind, seq.volume) == ("video", None)
    assert np.array_equal(frames_of(seq), frames)
    stack = (np.arange(4 * 6 * 5).reshape(4, 6, 5) * 100).astype(np.uint16)  # (Z, Y, X)
    seq = open_sequence(write_tiff(tmp_path / "stack.tif", stack), window=(1000, 2000))
    assert (seq.kind, len(seq), seq.height, seq.width) == ("volume", 4, 6, 5)
    assert seq.volume.format == "tiff" and seq.volume.shape == (4, 6, 5)
    for k in range(4):  # page k is frame k as stored
        assert np.array_equal(seq.rgb(k)[..., 0], apply_window(stack[k], (1000, 2000)))
    side = open_sequence(tmp_path / "stack.tif", axis=2, window=(1000, 2000))
    assert (len(side), side.height, side.width) == (5, 4, 6)  # (Z, Y) planes: y = page
    assert np.array_equal(side.rgb(3)[..., 0], apply_window(stack[:, :, 3], (1000, 2000)))
    grey = open_sequence(write_tiff(tmp_path / "grey.tif", frames[..., 0]), kind="volume")
    assert grey.kind == "volume" and grey.window != (127.5, 255.0)  # the auto window
    with pytest.raises(ConfigError, match="apply to volumes"):
        open_sequence(tmp_path / "clip.tif", window="ct-soft")
    with pytest.raises(ConfigError, match="must be grey"):
        open_sequence(tmp_path / "clip.tif", kind="volume")


@pytest.mark.parametrize("name", ["vol.nii", "vol.nii.gz"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_slices_along_each_axis(tmp_path, name, axis):
    values, _ = blob_volume()
    path = write_nifti(tmp_path / name, values, oblique_affine(), slope=0.5, inter=-10.0)
    stored = np.asarray(nib.load(str(path)).get_fdata())  # what nibabel reads, scaled
    seq = open_sequence(path, axis=axis, window=(200, 600))
    assert seq.kind == "volume" and len(seq) == values.shape[axis]
    info = seq.volume
    assert (info.format, info.shape, info.axis) == ("nifti", values.shape, axis)
    assert np.allclose(info.affine, oblique_affine()) and np.allclose(info.spacing, (0.8, 0.9, 2.5))
    for k in range(len(seq)):  # frame pixel (x, y) is voxel (p, q) = (x, y) of the plane
        plane = np.take(stored, k, axis=axis)  # (p, q)
        assert np.array_equal(seq.rgb(k)[..., 0], apply_window(plane, (200, 600)).T), k
    seq.close()


def test_nifti_default_axis_auto_window_and_temp_file_removed(tmp_path):
    values, _ = blob_volume()
    seq = open_sequence(write_nifti(tmp_path / "v.nii.gz", values, np.eye(4)))
    assert seq.volume.axis == 2 and (seq.height, seq.width) == (16, 20)
    center, width = seq.window  # the 0.5-99.5 percentiles of a sample: background to blob
    assert 900 <= center + width / 2 <= 1000 and 0 <= center - width / 2 <= 10
    temp = seq.reader._tmp
    seq.close()
    assert not __import__("os").path.exists(temp)


def test_dicom_series_sorted_by_position_rescaled(tmp_path):
    values, _ = blob_volume((12, 20, 16))  # stored values, (Z, rows, cols)
    geometry = write_dicom_series(tmp_path / "series", values)
    (tmp_path / "series" / "README.txt").write_text("not DICOM")
    seq = open_sequence(tmp_path / "series", window=(0, 4000))
    assert (seq.kind, len(seq), seq.height, seq.width) == ("volume", 12, 20, 16)
    hounsfield = values * 2.0 - 1024
    for k in range(12):  # axial frames are the images as stored, sorted along the normal
        assert np.array_equal(seq.rgb(k)[..., 0], apply_window(hounsfield[k], (0, 4000))), k
    info = seq.volume
    assert (info.format, info.shape, info.axis) == ("dicom", (16, 20, 12), 2)
    assert np.allclose(info.spacing, (0.7, 0.6, 2.0))
    lps_to_ras = np.array([-1, -1, 1])
    for k in (0, 5, 11):  # voxel (col, row, slice) -> RAS: slice k's position, its axes
        position = geometry["origin"] + k * 2.0 * geometry["normal"]
        assert np.allclose(info.affine @ [0, 0, k, 1], [*(position * lps_to_ras), 1])
        step = info.affine @ [3, 2, k, 1] - info.affine @ [0, 0, k, 1]
        expect = (3 * 0.7 * geometry["row_dir"] + 2 * 0.6 * geometry["col_dir"]) * lps_to_ras
        assert np.allclose(step[:3], expect)
    sagittal = open_sequence(tmp_path / "series", axis=0, window=(0, 4000))
    assert (len(sagittal), sagittal.height, sagittal.width) == (16, 12, 20)
    assert np.array_equal(sagittal.rgb(4)[..., 0], apply_window(hounsfield[:, :, 4], (0, 4000)))


def test_windows():
    assert parse_window("ct-lung") == (-600.0, 1500.0) and parse_window("40,400") == (40, 400)
    assert parse_window("mr") is None and parse_window(None) is None
    windowed = apply_window(np.array([-200.0, -160, 40, 240, 999]), (40, 400))
    assert np.array_equal(windowed, [0, 0, 128, 255, 255])
    bad_windows = [
        ("ct-liver", "unknown window"),
        ((40, 0), "width > 0"),
        ((40,), "two numbers"),
        (("a", "b"), "numbers"),
        ((np.nan, 4), "finite"),
    ]
    for bad, match in bad_windows:
        with pytest.raises(ConfigError, match=match):
            parse_window(bad)


def test_bad_inputs(tmp_path):
    def fails(error, match, path, **options):
        with pytest.raises(error, match=match):
            open_sequence(path, **options)

    fails(ImageError, "input not found", tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    fails(ImageError, "no frames in", tmp_path / "empty")
    for name, data, match in [
        ("junk.mp4", b"not a video at all", "cannot read video"),
        ("junk.nii", b"\0" * 400, "cannot read NIfTI"),
        ("junk.nii.gz", b"\x1f\x8b\x08\0garbage", "NIfTI"),
        ("junk.tif", b"II*\0broken", "cannot read TIFF"),
        ("notes.xyz", b"text", "cannot tell what"),
        ("one.dcm", b"\0" * 132, "folder of its series"),
    ]:
        (tmp_path / name).write_bytes(data)
        fails(ImageError, match, tmp_path / name)
    values, _ = blob_volume()
    nii = write_nifti(tmp_path / "v.nii", values, np.eye(4))
    fails(ConfigError, "axis must be an int from -3 to 2", nii, axis=3)
    fails(ConfigError, "axis must be", nii, axis=1.0)
    fails(ConfigError, "unknown window", nii, window="ct-heart")
    fails(ConfigError, 'kind "volume"', nii, kind="video")
    fails(ConfigError, "kind must be", nii, kind="movie")
    fails(ImageError, "2-D NIfTI", write_nifti(tmp_path / "flat.nii", values[:, :, 0], np.eye(4)))
    series = write_nifti(tmp_path / "t.nii", np.stack([values] * 3, -1), np.eye(4))
    fails(ImageError, "holds 3 volumes", series)
    truncated = tmp_path / "cut.nii"
    truncated.write_bytes(nii.read_bytes()[:2000])
    fails(ImageError, "truncated|cannot read", truncated)
    rng = np.random.default_rng(0)
    noisy = write_nifti(
        tmp_path / "noisy.nii.gz", rng.integers(0, 999, (9, 9, 9)).astype(np.int16), np.eye(4)
    )
    (tmp_path / "cut.nii.gz").write_bytes(noisy.read_bytes()[:1000])
    fails(ImageError, "cannot decompress", tmp_path / "cut.nii.gz")
    video = write_video(tmp_path / "clip.mkv", moving_frames(2))
    fails(ConfigError, "apply to volumes only", video, axis=0)
    fails(ConfigError, "apply to volumes only", video, window="ct-soft")


def test_huge_slices_are_refused_before_reading(tmp_path, monkeypatch):
    import segany.sequences.volume as volume

    values, _ = blob_volume()
    path = write_nifti(tmp_path / "v.nii", values, np.eye(4))
    monkeypatch.setattr(volume, "MAX_SLICE_PIXELS", 20 * 16 - 1)
    with pytest.raises(ImageError, match="pixel limit"):
        open_sequence(path)  # 20 x 16 slices along axis 2
    assert len(open_sequence(path, axis=0)) == 20  # 16 x 12 slices fit


def test_sequence_frames_feed_sam2_as_a_folder_would(tmp_path):
    """`open_frames(sequence)` preprocesses a sequence's frames as the folder of them."""
    values, _ = blob_volume()
    seq = open_sequence(write_nifti(tmp_path / "v.nii.gz", values, oblique_affine()))
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(len(seq)):
        Image.fromarray(seq.rgb(k)).save(folder / f"{k:05d}.png")
    ours, theirs = open_frames(seq, 64), open_frames(folder, 64)
    assert isinstance(ours, SequenceFrames) and (ours.height, ours.width) == (16, 20)
    for k in (0, 5, 11):
        assert torch.equal(ours[k], theirs[k])
    model = segany.build_sam("sam2.1_hiera_t", pretrained=False, image_size=64)
    predictor = segany.VideoPredictor(model)
    state = predictor.init_state(seq)
    predictor.add_new_points_or_box(state, 2, 1, [[8, 6]], [1])
    out = list(predictor.propagate_in_video(state, max_frame_num_to_track=2))
    assert [frame for frame, _, _ in out] == [2, 3, 4] and out[0][2].shape[-2:] == (16, 20)


@pytest.mark.parametrize("index", ["none", "wrong"])
def test_video_index_falls_back_to_decoding(tmp_path, monkeypatch, index):
    """Packets without time stamps (None), or whose stamps do not match the decoded frames,
    make the decoder index the file by decoding it; the frames stay right."""
    from segany.sequences.video_decoder import VideoDecoder

    packets = VideoDecoder._index_packets
    fake = {"none": lambda self: None, "wrong": lambda self: [p + 1 for p in packets(self)]}
    monkeypatch.setattr(VideoDecoder, "_index_packets", fake[index])
    frames = moving_frames(6)
    seq = open_sequence(write_video(tmp_path / "clip.mkv", frames))
    assert seq.decoder._decoded_index and len(seq) == 6
    for i in (5, 0, 3):
        assert np.array_equal(seq.rgb(i), frames[i])
