"""Video frames for SAM 2, decoded when asked instead of all at once.

The reference `sam2.utils.misc.load_video_frames` decodes every frame into one
(T, 3, S, S) float32 tensor up front: 12 MB a frame at S = 1024, 12 GB for 1,000 frames. A
`FrameSource` holds only the file names (or a decoder position in a video file, see
`segany.video.video_file`) and a small LRU of preprocessed frames.

Preprocessing is the reference's, value for value: the RGB frame resized to S x S with PIL's
default (bicubic) filter, divided by 255 in float64, stored as float32, then
(x - mean) / std in float32 with ImageNet's mean and std. EXIF orientation is ignored, as in
the reference (the pixels as stored).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segany.errors import ImageError
from segany.formats.image import read_image
from segany.sequences.base import FrameSequence

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Suffixes of frame files in a folder (compared in lower case). The reference reads JPEG only.
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def preprocess_frame(
    image: Image.Image, image_size: int, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """An RGB PIL image -> (3, image_size, image_size) float32, normalised by `mean` and `std`
    ((3, 1, 1) float32 each). The frame is squashed to a square, not padded (as SAM 2 does for
    video, unlike the image predictor's resize-longest-side)."""
    resized = np.array(image.resize((image_size, image_size)))  # (S, S, 3) uint8
    # float64 division then float32, so that each value is rounded once, as in the reference
    frame = torch.from_numpy(resized).permute(2, 0, 1).double().div(255.0).float()
    frame -= mean
    frame /= std
    return frame


class FrameSource(ABC):
    """The frames of one video: `len(source)` frames, each `source[i]` a (3, S, S) float32
    tensor ready for the image encoder; `height` x `width` is the video's own resolution (the
    frame in which prompts are given and masks returned).

    Preprocessed frames are kept in an LRU of `cache_frames` entries (12 MB each at S = 1024),
    on `device` (the reference's `offload_video_to_cpu=False`) or on the CPU.
    """

    def __init__(
        self,
        image_size: int,
        cache_frames: int = 4,
        device: torch.device | str = "cpu",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if cache_frames < 1:
            raise ValueError(f"cache_frames must be >= 1, got {cache_frames}")
        self.image_size = image_size
        self.cache_frames = cache_frames
        self.device = torch.device(device)
        self._mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.height = 0
        self.width = 0

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @abstractmethod
    def read_image(self, index: int) -> Image.Image:
        """Frame `index` (already range-checked) as an RGB PIL image at the video's resolution."""

    def close(self) -> None:
        """Release files or decoders held open (a no-op for folders)."""
        self._cache.clear()

    def check_index(self, index: int) -> int:
        """`index` as an int, or `ImageError` if it is not a frame of this video."""
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ImageError(f"frame_idx must be an int, got {type(index).__name__}")
        if not 0 <= index < n:
            raise ImageError(f"frame {index} is out of range: the video has {n} frames")
        return int(index)

    def rgb(self, index: int) -> np.ndarray:
        """Frame `index` as stored: (H, W, 3) uint8 RGB at the video's resolution."""
        return np.asarray(self.read_image(self.check_index(index)))

    def __getitem__(self, index: int) -> torch.Tensor:
        """Frame `index`: (3, S, S) float32, normalised, on the cache's device."""
        index = self.check_index(index)
        frame = self._cache.get(index)
        if frame is not None:
            self._cache.move_to_end(index)
            return frame
        frame = preprocess_frame(self.read_image(index), self.image_size, self._mean, self._std)
        frame = frame.to(self.device)
        self._cache[index] = frame
        while len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return frame

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _frame_number(name: str) -> int | None:
    stem, _ = os.path.splitext(name)
    return int(stem) if stem.isdigit() else None


class FolderFrames(FrameSource):
    """A folder of JPEG or PNG frames named by their number (`00000.jpg`, `1.png`, ...), in
    numeric order, as the reference reads them (it takes JPEG only). The video's resolution
    is frame 0's; every frame is resized to S x S whatever its size."""

    def __init__(self, folder: str | os.PathLike, image_size: int, **kwargs) -> None:
        super().__init__(image_size, **kwargs)
        folder = Path(folder)
        if not folder.is_dir():
            raise ImageError(f"video folder not found: {folder}")
        names = [p for p in os.listdir(folder) if p.lower().endswith(FRAME_EXTENSIONS)]
        if not names:
            raise ImageError(
                f"no frames in {folder}: give a folder of JPEG or PNG files named by their "
                "frame number (00000.jpg, 00001.jpg, ...) or a video file"
            )
        unnumbered = [p for p in names if _frame_number(p) is None]
        if unnumbered:
            raise ImageError(
                f"frame files must be named by their number (e.g. 00000.jpg); {folder} has "
                f"{unnumbered[:3]}"
            )
        names.sort(key=_frame_number)
        numbers = [_frame_number(p) for p in names]
        if len(set(numbers)) != len(numbers):
            raise ImageError(f"{folder} has two frame files with the same number")
        self.paths = [folder / p for p in names]
        first = self.read_image(0)
        self.width, self.height = first.size

    def __len__(self) -> int:
        return len(self.paths)

    def read_image(self, index: int) -> Image.Image:
        return read_image(self.paths[index], upright=False)


def open_frames(
    video: str | os.PathLike | bytes | FrameSource | FrameSequence,
    image_size: int,
    cache_frames: int = 4,
    device: torch.device | str = "cpu",
) -> FrameSource:
    """A `FrameSource` for `video`: a folder of numbered frames, a video file (any container
    PyAV reads: mp4, webm, mkv, avi, ...) or its bytes, a `FrameSource` (returned as is) or a
    `segany.sequences.FrameSequence` (any input `open_sequence` reads; see `SequenceFrames`).

    Raises `ImageError` for a missing path or a folder without frames, `ConfigError` when a
    video file needs PyAV and it is not installed (`pip install "segany[video]"`).
    """
    if isinstance(video, FrameSource):
        if video.image_size != image_size:
            raise ImageError(
                f"the frame source resizes to {video.image_size} px but the model takes "
                f"{image_size} px"
            )
        return video
    options = {"cache_frames": cache_frames, "device": device}
    if isinstance(video, FrameSequence):
        from segany.video.sequence_frames import SequenceFrames

        return SequenceFrames(video, image_size, **options)
    if isinstance(video, bytes | bytearray):
        from segany.video.video_file import VideoFileFrames

        return VideoFileFrames(bytes(video), image_size, **options)
    if not isinstance(video, str | os.PathLike):
        raise ImageError(
            "video_path must be a folder, a video file, its bytes, a FrameSource or a "
            f"FrameSequence, got "
            f"{type(video).__name__}"
        )
    path = Path(video)
    if path.is_dir():
        return FolderFrames(path, image_size, **options)
    if not path.exists():
        raise ImageError(f"video not found: {path} (give a folder of frames or a video file)")
    from segany.video.video_file import VideoFileFrames

    return VideoFileFrames(path, image_size, **options)
