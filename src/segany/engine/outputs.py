"""Where one image's outputs go, whether they are already there, and writing them.

Layout under the output folder, for an image whose job key is "sub/a":
    sa1b:     sub/a.json
    coco:     coco_parts/sub/a.json per image, merged into annotations.json at the end
    png:      sub/a/0.png, 1.png, ..., sub/a/metadata.csv
    --overlay overlays/sub/a.png
    every format: manifest.json, where each image is (`segany.formats.manifest`), so the
              outputs can be read back as a dataset (`sa1b:DIR`, `coco:DIR/annotations.json`)
Every file (the PNG folder as a whole) appears atomically, so "exists" means "done".
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segany.engine.jobs import ImageJob
from segany.engine.options import OutputOptions
from segany.errors import ConfigError
from segany.formats.atomic import atomic_file
from segany.formats.coco import write_coco_part
from segany.formats.manifest import MANIFEST_FILE
from segany.formats.png import METADATA_FILE, write_png_masks
from segany.formats.sa1b import write_sa1b
from segany.formats.segmentation import to_binary_mask

COCO_FILE = "annotations.json"
COCO_PARTS = "coco_parts"
OVERLAYS = "overlays"
ERRORS_FILE = "errors.txt"
# Top-level names of the run's own files and folders: no image's outputs may take them, and a
# reader of the folder skips them.
RESERVED_NAMES = frozenset({COCO_FILE, COCO_PARTS, OVERLAYS, ERRORS_FILE, MANIFEST_FILE})


class OutputLayout:
    """The output paths of a run (see the module docstring)."""

    def __init__(self, options: OutputOptions) -> None:
        self.options = options
        self.root = Path(options.out_dir)

    @property
    def coco_file(self) -> Path:
        return self.root / COCO_FILE

    @property
    def errors_file(self) -> Path:
        return self.root / ERRORS_FILE

    @property
    def manifest_file(self) -> Path:
        return self.root / MANIFEST_FILE

    def check_keys(self, jobs: list[ImageJob]) -> None:
        """`ConfigError` if an image's outputs would land on the run's own files."""
        for job in jobs:
            top = PurePosixPath(job.key).parts[0]
            if top in RESERVED_NAMES or f"{top}.json" in RESERVED_NAMES:
                raise ConfigError(
                    f"{job.path}: its outputs would be named {job.key!r}, which the run uses "
                    f"for its own files ({', '.join(sorted(RESERVED_NAMES))}); rename it"
                )

    def primary(self, job: ImageJob) -> Path:
        """The file (sa1b, coco part) or folder (png) that holds the image's masks."""
        fmt = self.options.format
        if fmt == "sa1b":
            return self.root / f"{job.key}.json"
        if fmt == "coco":
            return self.root / COCO_PARTS / f"{job.key}.json"
        return self.root / job.key

    def overlay(self, job: ImageJob) -> Path:
        return self.root / OVERLAYS / f"{job.key}.png"

    def is_done(self, job: ImageJob) -> bool:
        primary = self.primary(job)
        done = (
            (primary / METADATA_FILE).is_file()
            if self.options.format == "png"
            else primary.is_file()
        )
        return done and (not self.options.overlay or self.overlay(job).is_file())

    def write(self, job: ImageJob, image: np.ndarray, records: list[dict[str, Any]]) -> None:
        """Write the masks of `image` ((H, W, 3) uint8 RGB) in the run's format (+ overlay).

        The overlay goes first: an image counts as done once its primary output exists.
        """
        height, width = image.shape[:2]
        if self.options.overlay:
            write_overlay(self.overlay(job), image, records)
        fmt, primary = self.options.format, self.primary(job)
        if fmt == "sa1b":
            write_sa1b(primary, job.image_id, job.name, width, height, records)
        elif fmt == "coco":
            write_coco_part(primary, job.name, width, height, records)
        else:
            write_png_masks(primary, records)


def write_overlay(path: Path, image: np.ndarray, records: list[dict[str, Any]]) -> None:
    """Draw every mask in its own colour, largest first so small ones stay visible; masks
    are decoded one at a time."""
    from segany.visualize import draw_masks

    by_area = sorted(records, key=lambda record: int(record["area"]), reverse=True)
    masks = (to_binary_mask(record["segmentation"]) for record in by_area)
    with atomic_file(path) as temporary:
        draw_masks(image, masks).save(temporary)
