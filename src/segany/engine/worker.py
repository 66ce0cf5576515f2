"""One model replica's work on one image: read, generate, write. The local engine runs one
`ImageWorker` in-process, the Ray engine one per actor, so both write identical outputs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from segany.engine.jobs import ImageJob
from segany.engine.options import ModelSource, OutputOptions
from segany.engine.outputs import OutputLayout
from segany.errors import ImageError
from segany.formats.image import read_image

if TYPE_CHECKING:
    from segany.masks.config import AmgConfig
    from segany.modeling.sam import Sam

DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class JobResult:
    """What became of one image: status DONE (n_masks written) or FAILED (message says why)."""

    image_id: int
    name: str
    status: str
    n_masks: int = 0
    message: str = ""


def build_generator(model: Sam, amg: AmgConfig) -> Any:
    """An `AutomaticMaskGenerator` of `model` with `amg`'s options."""
    from segany.masks.generator import AutomaticMaskGenerator

    return AutomaticMaskGenerator(model, amg)


class ImageWorker:
    """Holds one model and generator; `process(job)` segments one image and writes it."""

    def __init__(self, model: ModelSource, amg: AmgConfig, output: OutputOptions) -> None:
        self.layout = OutputLayout(output)
        # Compact COCO RLEs whatever the format: writers encode or decode one mask at a time
        # from them, so an image's masks never sit in memory as full-size arrays.
        compact = dataclasses.replace(amg, output_mode="coco_rle")
        self.generator = build_generator(model.build(), compact)

    def process(self, job: ImageJob) -> JobResult:
        """Segment and write one image. An unreadable image (or one the generator refuses,
        e.g. too small) gives a FAILED result instead of an exception; anything else (a
        full disk, a bug) propagates and stops the run."""
        try:
            image = np.asarray(read_image(job.path))  # (H, W, 3) uint8 RGB, EXIF-upright
            records = self.generator.generate(image)
        except ImageError as e:
            return JobResult(job.image_id, job.name, FAILED, message=str(e))
        self.layout.write(job, image, records)
        return JobResult(job.image_id, job.name, DONE, n_masks=len(records))
