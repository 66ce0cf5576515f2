"""Frames of a video file for SAM 2's video predictor, decoded with PyAV (`segany[video]`) when
asked: a `FrameSource` over `segany.sequences.video_decoder.VideoDecoder`, which holds the
decoding, seeking and the byte budget of decoded frames (see there).

The reference reads video files with decord, resizing inside the decoder; here each decoded
RGB frame goes through the same PIL resize as a folder's frames, so a video file and a folder
of its decoded frames give equal tensors.
"""

from __future__ import annotations

import os

from PIL import Image

from segany.sequences.video_decoder import VideoDecoder, import_av
from segany.video.frames import FrameSource

__all__ = ["VideoFileFrames", "import_av"]


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
        self.decoder = VideoDecoder(video, raw_cache_bytes)
        self.height, self.width = self.decoder.height, self.decoder.width

    def __len__(self) -> int:
        return len(self.decoder)

    def read_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.decoder.rgb(index))

    def close(self) -> None:
        super().close()
        self.decoder.close()
