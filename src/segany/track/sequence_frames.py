"""A `FrameSequence` seen as SAM 2's `segany.video.FrameSource` (frames decoded on demand and
preprocessed by the video predictor's own code), so that `VideoPredictor` tracks any
sequence segany reads: video files, folders of frames, TIFF stacks, volumes."""

from __future__ import annotations

from PIL import Image

from segany.sequences.base import FrameSequence
from segany.video.frames import FrameSource


class SequenceSource(FrameSource):
    """`sequence`'s frames for a SAM 2 model of `image_size` px input; `height` x `width` is
    the sequence's frame size (the frame prompts are given and masks returned in)."""

    def __init__(self, sequence: FrameSequence, image_size: int, **kwargs) -> None:
        super().__init__(image_size, **kwargs)
        self.sequence = sequence
        self.height = sequence.height
        self.width = sequence.width

    def __len__(self) -> int:
        return len(self.sequence)

    def read_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.sequence.rgb(index))

    def close(self) -> None:
        """Drop the cached frames; the sequence stays open (its owner closes it)."""
        super().close()
