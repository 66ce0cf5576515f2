"""Frame sources of the video predictor: folders and video files read lazily, preprocessed
exactly as the reference's `load_video_frames`."""

from __future__ import annotations

import sys

import av  # the segany[video] extra, part of segany[dev]
import numpy as np
import pytest
import torch
from PIL import Image
from sam2.utils.misc import load_video_frames

from segany.errors import ConfigError, ImageError
from segany.video.frames import FolderFrames, open_frames
from segany.video.video_file import VideoFileFrames

SIZE = 64  # the model-input side the frames are resized to


def moving_frames(n: int = 12, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames: a textured background with a disc moving right."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        img = np.stack([(xx * 3 + t) % 256, (yy * 5) % 256, (xx + yy) % 256], axis=-1)
        img = img.astype(np.uint8)
        img[(xx - 8 - 3 * t) ** 2 + (yy - 24) ** 2 < 64] = (250, 20, 20)
        frames.append(img)
    return frames


def write_folder(folder, frames, ext="png", digits=5):
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:0{digits}d}.{ext}", quality=95)
    return folder


def write_video(path, frames, codec, pix_fmt, **options):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10, options=options)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_folder_equals_reference(tmp_path):
    folder = write_folder(tmp_path / "jpg", moving_frames(), ext="jpg")
    ref, ref_h, ref_w = load_video_frames(str(folder), SIZE, offload_video_to_cpu=True)
    ours = open_frames(folder, SIZE)
    assert isinstance(ours, FolderFrames)
    assert (len(ours), ours.height, ours.width) == (len(ref), ref_h, ref_w)
    for i in range(len(ref)):
        assert ours[i].dtype == torch.float32
        assert torch.equal(ours[i], ref[i]), i


def test_folder_numeric_order_png_and_lru(tmp_path):
    frames = moving_frames(4)
    folder = tmp_path / "png"
    folder.mkdir()
    for number, frame in zip((0, 2, 10, 7), frames, strict=True):
        Image.fromarray(frame).save(folder / f"{number}.png")
    (folder / "notes.txt").write_text("not a frame")
    source = FolderFrames(folder, SIZE, cache_frames=2)
    assert [p.name for p in source.paths] == ["0.png", "2.png", "7.png", "10.png"]
    assert np.array_equal(source.rgb(2), frames[3])  # 7.png
    for i in (0, 1, 2, 3, 0):
        source[i]
    assert len(source._cache) == 2


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "options"),
    [
        ("lossless.mkv", "ffv1", "bgr0", {}),
        ("lossless_rgb.mkv", "libx264rgb", "rgb24", {"crf": "0", "g": "4"}),
    ],
)
def test_lossless_video_equals_folder(tmp_path, name, codec, pix_fmt, options):
    frames = moving_frames()
    folder = open_frames(write_folder(tmp_path / "frames", frames), SIZE)
    video = open_frames(write_video(tmp_path / name, frames, codec, pix_fmt, **options), SIZE)
    assert isinstance(video, VideoFileFrames)
    assert (len(video), video.height, video.width) == (len(folder), 48, 64)
    for i in range(len(frames)):
        assert torch.equal(video[i], folder[i]), i


def test_lossy_video_equals_its_decoded_frames(tmp_path):
    """An mp4 (H.264, 4:2:0, key frame every 5 frames) read in any order equals a folder of
    the frames a plain sequential decode gives."""
    path = write_video(tmp_path / "clip.mp4", moving_frames(20), "libx264", "yuv420p", g="5")
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    folder = open_frames(write_folder(tmp_path / "decoded", decoded), SIZE)
    # a raw cache of 3 frames: reading backwards must seek, and land on the right frames
    video = VideoFileFrames(path, SIZE, raw_cache_bytes=3 * decoded[0].nbytes, cache_frames=1)
    order = [*range(20), *range(19, -1, -1), 7, 3, 15, 0, 19, 11]
    for i in order:
        assert np.array_equal(video.rgb(i), decoded[i]), i
        assert torch.equal(video[i], folder[i]), i
    video.close()


def test_video_reads_forward_without_seeking_and_backward_in_few_seeks(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", moving_frames(30), "libx264", "yuv420p", g="10")
    frame_bytes = 48 * 64 * 3
    video = VideoFileFrames(path, SIZE, raw_cache_bytes=8 * frame_bytes)
    seeks = []
    original = video.decoder._seek
    monkeypatch.setattr(
        video.decoder, "_seek", lambda index: (seeks.append(index), original(index))
    )
    for i in range(30):
        video.rgb(i)
    assert seeks == []
    for i in range(29, -1, -1):
        video.rgb(i)
    assert len(seeks) <= 30 // 8 + 1


def test_video_bytes(tmp_path):
    frames = moving_frames(5)
    path = write_video(tmp_path / "clip.mkv", frames, "ffv1", "bgr0")
    video = open_frames(path.read_bytes(), SIZE)
    assert len(video) == 5
    assert np.array_equal(video.rgb(4), frames[4])


def test_bad_inputs(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        open_frames(tmp_path / "missing", SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no frames"):
        open_frames(tmp_path / "empty", SIZE)
    folder = tmp_path / "named"
    folder.mkdir()
    Image.fromarray(moving_frames(1)[0]).save(folder / "first.jpg")
    with pytest.raises(ImageError, match="named by their number"):
        open_frames(folder, SIZE)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ImageError, match="cannot read video"):
        open_frames(tmp_path / "junk.mp4", SIZE)
    source = open_frames(write_folder(tmp_path / "ok", moving_frames(3)), SIZE)
    with pytest.raises(ImageError, match="out of range"):
        source[3]
    with pytest.raises(ImageError):
        open_frames(12, SIZE)


def test_missing_pyav_is_a_config_error(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mkv", moving_frames(2), "ffv1", "bgr0")
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    with pytest.raises(ConfigError, match=r"segany\[video\]"):
        open_frames(path, SIZE)
