"""Frames of a video file, decoded with PyAV (`segany[video]`) when asked.

Opening the file decodes it once to count its frames and learn each frame's time stamp; no
frame is kept. Afterwards the decoder stays where it stopped: reading frames in order
(propagation forward) decodes each frame once. A jump back or far ahead seeks to the key frame
before the target and decodes from there, keeping the last decoded frames (a byte budget of
RGB frames at the video's resolution): reading backwards (propagation in reverse) seeks
to the key frame before the budget's worth of frames ending at the target and decodes them
all, so it seeks once per budget's worth of frames rather than once per frame.

The reference reads video files with decord, resizing inside the decoder; here each decoded
RGB frame goes through the same PIL resize as a folder's frames, so a video file and a folder
of its decoded frames give equal tensors.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segany.errors import ConfigError, ImageError
from segany.video.frames import FrameSource

# Decoding forward by this many frames is cheaper than seeking to a key frame.
_MAX_FORWARD_DECODE = 32


def import_av() -> Any:
    """The `av` module (PyAV), or a `ConfigError` that says how to install it."""
    try:
        import av
    except ImportError as e:
        raise ConfigError(
            f"reading video files needs PyAV ({e}); install segany[video] "
            '(pip install "segany[video]") or give a folder of JPEG/PNG frames'
        ) from None
    return av


class VideoFileFrames(FrameSource):
    """The frames of a video file (or its bytes), in presentation order; the first video
    stream. `raw_cache_bytes` bounds the RGB frames kept around the decoder's position."""

    def __init__(
        self,
        video: str | os.PathLike | bytes,
        image_size: int,
        raw_cache_bytes: int = 32 * 2**20,
        **kwargs,
    ) -> None:
        super().__init__(image_size, **kwargs)
        self._av = import_av()
        self._source = video if isinstance(video, bytes) else Path(video)
        self._name = "<video bytes>" if isinstance(video, bytes) else str(video)
        self._raw: OrderedDict[int, np.ndarray] = OrderedDict()  # index -> (H, W, 3) uint8
        self._raw_cache_bytes = raw_cache_bytes
        self._container = None
        self._decoder: Iterator[Any] | None = None
        self._next_index = 0  # index of the frame the decoder yields next
        self._pts: list[int | None] = self._index_frames()
        if not self._pts:
            raise ImageError(f"{self._name} has no video frames")
        # Seeking needs a time stamp on every frame; without, jumps back decode from the start.
        self._seekable = all(p is not None for p in self._pts)
        self._index_of_pts = {p: i for i, p in enumerate(self._pts)}
        self._raw_capacity = max(1, raw_cache_bytes // (self.height * self.width * 3))
        self._last_read = -1

    def _open(self) -> Any:
        """A fresh container on the file, its first video stream set for threaded decoding."""
        self.close_container()
        source = io.BytesIO(self._source) if isinstance(self._source, bytes) else self._source
        try:
            container = self._av.open(source if isinstance(source, io.BytesIO) else str(source))
        except (self._av.FFmpegError, OSError) as e:
            raise ImageError(f"cannot read video {self._name}: {e}") from None
        if not container.streams.video:
            container.close()
            raise ImageError(f"{self._name} has no video stream")
        self._container = container
        self._stream = container.streams.video[0]
        self._stream.thread_type = "AUTO"
        return container

    def _index_frames(self) -> list[int | None]:
        """Decode the whole file once: each frame's pts; the resolution from the first."""
        container = self._open()
        pts: list[int | None] = []
        try:
            for frame in container.decode(self._stream):
                if not pts:
                    self.width, self.height = frame.width, frame.height
                pts.append(frame.pts)
        except self._av.FFmpegError as e:
            raise ImageError(f"cannot decode video {self._name}: {e}") from None
        self._restart()
        return pts

    def _restart(self) -> None:
        container = self._open()
        self._decoder = container.decode(self._stream)
        self._next_index = 0

    def _seek(self, index: int) -> None:
        """Put the decoder on the key frame at or before frame `index`."""
        if not self._seekable:
            self._restart()
            return
        self._container.seek(self._pts[index], stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)
        frame = next(self._decoder, None)
        start = None if frame is None else self._index_of_pts.get(frame.pts)
        if start is None or start > index:
            self._restart()  # a container whose seek missed: decode from the start instead
            return
        self._keep(start, frame)
        self._next_index = start + 1

    def _keep(self, index: int, frame: Any) -> None:
        rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
        self._raw[index] = rgb
        self._raw.move_to_end(index)
        while len(self._raw) > 1 and len(self._raw) * rgb.nbytes > self._raw_cache_bytes:
            self._raw.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pts)

    def read_image(self, index: int) -> Image.Image:
        rgb = self._raw.get(index)
        if rgb is None:
            if self._decoder is None:
                self._restart()
            if not self._next_index <= index < self._next_index + _MAX_FORWARD_DECODE:
                # Reading backwards: decode the cache's worth of frames up to `index` at once.
                backwards = index < self._last_read
                self._seek(max(0, index - self._raw_capacity + 1) if backwards else index)
            while self._next_index <= index:
                frame = next(self._decoder, None)
                if frame is None:
                    raise ImageError(f"{self._name} ended before frame {index}")
                self._keep(self._next_index, frame)
                self._next_index += 1
            rgb = self._raw[index]
        else:
            self._raw.move_to_end(index)
        self._last_read = index
        return Image.fromarray(rgb)

    def close_container(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoder = None

    def close(self) -> None:
        super().close()
        self._raw.clear()
        self.close_container()
