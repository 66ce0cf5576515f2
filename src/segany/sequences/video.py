"""A video file (mp4, webm, avi, mov, mkv: any container PyAV reads) as a `FrameSequence`."""

from __future__ import annotations

import os

import numpy as np

from segany.sequences.base import FrameSequence
from segany.sequences.video_decoder import VideoDecoder

# Suffixes `open_sequence` reads as video files (compared in lower case).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".webm", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".ogv")


class VideoSequence(FrameSequence):
    """The frames of a video file in presentation order (its first video stream), decoded
    when read. `cache_bytes` bounds the decoded frames kept (32 MiB by default, at least one
    frame): memory does not grow with the video's length. `fps` is the stream's average rate.
    `name(i)` is the frame number, zero-padded to 5 digits.

    Raises `ImageError` for a file PyAV cannot open or decode, `ConfigError` without PyAV.
    """

    kind = "video"

    def __init__(self, path: str | os.PathLike | bytes, cache_bytes: int = 32 * 2**20) -> None:
        super().__init__()
        self.decoder = VideoDecoder(path, cache_bytes)
        self.height, self.width = self.decoder.height, self.decoder.width
        self.fps = self.decoder.fps

    def __len__(self) -> int:
        return len(self.decoder)

    def read_rgb(self, index: int) -> np.ndarray:
        return self.decoder.rgb(index)

    def close(self) -> None:
        self.decoder.close()
