"""Any `segany.sequences.FrameSequence` (a video file, a folder of frames, a TIFF, the slices
of a NIfTI or DICOM volume, an in-memory array) as SAM 2's `FrameSource`, so that
`VideoPredictor` tracks through every input `open_sequence` reads."""

from __future__ import annotations

from PIL import Image

from segany.sequences.base import FrameSequence
from segany.video.frames import FrameSource


class SequenceFrames(FrameSource):
    """The frames of `sequence`, each `sequence.rgb(i)` preprocessed for a model of
    `image_size` px input when asked; `height` x `width` is the sequence's frame size (the frame
    prompts are given and masks returned in). `close()` drops the preprocessed frames but
    leaves the sequence open: whoever opened it closes it."""

    def __init__(self, sequence: FrameSequence, image_size: int, **kwargs) -> None:
        super().__init__(image_size, **kwargs)
        self.sequence = sequence
        self.height, self.width = sequence.height, sequence.width

    def __len__(self) -> int:
        return len(self.sequence)

    def read_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.sequence.rgb(index))  # (H, W, 3) uint8 -> RGB
