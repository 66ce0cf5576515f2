"""`VideoDecoder`: the frames of a video file, decoded with PyAV (`segany[video]`) when asked.

Shared by `segany.sequences.open_sequence` (a video file as a `FrameSequence`) and SAM 2's
`VideoFileFrames`: one decoder, one seeking logic.

Opening the file reads its packets without decoding them (demuxing is cheap) to count the frames
and learn each frame's time stamp, then decodes frame 0 for the resolution. When a container's
packets carry no time stamps (some AVI, raw streams) or the decoded frames turn out not to match
the packets, the file is decoded once instead, keeping no frame. Afterwards the decoder stays
where it stopped: reading frames in order (propagation forward) decodes each frame once. A jump
back or far ahead seeks to the key frame before the target and decodes from there, keeping the
last decoded frames (a byte budget of RGB frames at the video's resolution): reading backwards
(propagation in reverse) seeks to the key frame before the budget's worth of frames ending at
the target and decodes them all, so it seeks once per budget's worth of frames rather than once
per frame. Memory: the budget (32 MiB by default) whatever the video's length.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segany.errors import ConfigError, ImageError

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


class _Mismatch(Exception):
    """The decoded frames do not match the time stamps read from the packets."""


class VideoDecoder:
    """The frames of a video file (or its bytes) in presentation order, from its first video
    stream: `len(decoder)` frames, `decoder.rgb(i)` an (H, W, 3) uint8 RGB array.

    `raw_cache_bytes` bounds the decoded RGB frames kept around the decoder's position (at
    least one frame is kept). `height`, `width`: the first frame's size; `fps`: the stream's
    average frame rate, None where the container does not say.
    """

    def __init__(self, video: str | os.PathLike | bytes, raw_cache_bytes: int = 32 * 2**20):
        self._av = import_av()
        self._source = video if isinstance(video, bytes) else Path(video)
        self._name = "<video bytes>" if isinstance(video, bytes) else str(video)
        self._raw: OrderedDict[int, np.ndarray] = OrderedDict()  # index -> (H, W, 3) uint8
        self._raw_cache_bytes = raw_cache_bytes
        self._container = None
        self._decoder: Iterator[Any] | None = None
        self._next_index = 0  # index of the frame the decoder yields next
        self._last_read = -1
        self._decoded_index = False  # whether self._pts came from a full decode
        pts = self._index_packets()
        self._set_index(pts if pts is not None else self._index_by_decoding())
        first = self._first_frame()
        self.height, self.width = first.shape[:2]
        self._raw_capacity = max(1, raw_cache_bytes // first.nbytes)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None

    # -- the index: each frame's time stamp, in presentation order --------------------------

    def _set_index(self, pts: list[int | None]) -> None:
        if not pts:
            raise ImageError(f"{self._name} has no video frames")
        self._pts = pts
        # Seeking needs a time stamp on every frame; without, jumps back decode from the start.
        self._seekable = all(p is not None for p in pts)
        self._index_of_pts = {p: i for i, p in enumerate(pts)}

    def _index_packets(self) -> list[int] | None:
        """The video packets' time stamps, sorted (presentation order), without decoding;
        None when a packet has none or two share one (then the file is decoded instead)."""
        container = self._open()
        pts: list[int] = []
        try:
            for packet in container.demux(self._stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream packet
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
        except self._av.FFmpegError as e:
            raise ImageError(f"cannot read video {self._name}: {e}") from None
        if len(set(pts)) != len(pts):
            return None
        return sorted(pts)

    def _index_by_decoding(self) -> list[int | None]:
        """Decode the whole file once, keeping each frame's pts and no frame."""
        container = self._open()
        self._decoded_index = True
        try:
            return [frame.pts for frame in container.decode(self._stream)]
        except self._av.FFmpegError as e:
            raise ImageError(f"cannot decode video {self._name}: {e}") from None

    def _first_frame(self) -> np.ndarray:
        """Frame 0 (decoded, kept); re-indexes by decoding if the packets misled."""
        self._restart()
        try:
            return self._decode_to(0)
        except _Mismatch:
            self._reindex()
            return self._decode_to(0)

    def _reindex(self) -> None:
        if self._decoded_index:
            raise ImageError(f"cannot decode video {self._name}: its frames lack time stamps")
        self._set_index(self._index_by_decoding())
        self._raw.clear()
        self._restart()

    # -- the decoder --------------------------------------------------------------------------

    def _open(self) -> Any:
        """A fresh container on the file, its first video stream set for threaded decoding."""
        self._close_container()
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
        frame = self._next_frame()
        start = None if frame is None else self._index_of_pts.get(frame.pts)
        if start is None or start > index:
            self._restart()  # a container whose seek missed: decode from the start instead
            return
        self._keep(start, frame)
        self._next_index = start + 1

    def _next_frame(self) -> Any:
        try:
            return next(self._decoder, None)
        except self._av.FFmpegError as e:
            raise ImageError(f"cannot decode video {self._name}: {e}") from None

    def _keep(self, index: int, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
        rgb.flags.writeable = False  # handed out as is: a caller must copy to change it
        self._raw[index] = rgb
        self._raw.move_to_end(index)
        while len(self._raw) > 1 and len(self._raw) * rgb.nbytes > self._raw_cache_bytes:
            self._raw.popitem(last=False)
        return rgb

    def _decode_to(self, index: int) -> np.ndarray:
        """Decode forward from the decoder's position through frame `index`."""
        rgb = None
        while self._next_index <= index:
            frame = self._next_frame()
            if frame is None:
                if not self._decoded_index:
                    raise _Mismatch
                raise ImageError(f"{self._name} ended before frame {index}")
            if self._seekable and frame.pts != self._pts[self._next_index]:
                raise _Mismatch
            rgb = self._keep(self._next_index, frame)
            self._next_index += 1
        return rgb if rgb is not None else self._raw[index]

    # -- the public calls ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pts)

    @property
    def cached_frames(self) -> int:
        """How many decoded frames are kept now (bounded by `raw_cache_bytes`)."""
        return len(self._raw)

    def rgb(self, index: int) -> np.ndarray:
        """Frame `index` (0 <= index < len, checked by the caller): (H, W, 3) uint8 RGB."""
        rgb = self._raw.get(index)
        if rgb is not None:
            self._raw.move_to_end(index)
            self._last_read = index
            return rgb
        if self._decoder is None:
            self._restart()
        if not self._next_index <= index < self._next_index + _MAX_FORWARD_DECODE:
            # Reading backwards: decode the cache's worth of frames up to `index` at once.
            backwards = index < self._last_read
            self._seek(max(0, index - self._raw_capacity + 1) if backwards else index)
        try:
            rgb = self._decode_to(index)
        except _Mismatch:
            self._reindex()
            return self.rgb(index)
        self._last_read = index
        return rgb

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoder = None

    def close(self) -> None:
        """Drop the kept frames and close the file (reopened if a frame is read again)."""
        self._raw.clear()
        self._close_container()
