"""PNG folder per image, the layout of segment-anything's `scripts/amg.py`: masks as 8-bit
PNGs (0 background, 255 object) named 0.png, 1.png, ... and a metadata.csv with one row per
mask (the row's id is the PNG's number)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segany.errors import FormatError
from segany.formats.atomic import atomic_folder
from segany.formats.fields import mask_fields
from segany.formats.segmentation import to_binary_mask

METADATA_FILE = "metadata.csv"
METADATA_HEADER = (
    "id",
    "area",
    "bbox_x0",
    "bbox_y0",
    "bbox_w",
    "bbox_h",
    "point_input_x",
    "point_input_y",
    "predicted_iou",
    "stability_score",
    "crop_box_x0",
    "crop_box_y0",
    "crop_box_w",
    "crop_box_h",
)


def metadata_row(index: int, record: dict[str, Any]) -> list[Any]:
    """The metadata.csv row of mask `index` (values in METADATA_HEADER's order)."""
    fields = mask_fields(record)
    x, y = fields["point_coords"][0]
    return [
        index,
        fields["area"],
        *fields["bbox"],
        x,
        y,
        fields["predicted_iou"],
        fields["stability_score"],
        *fields["crop_box"],
    ]


def write_png_masks(folder: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write the masks into `folder` (replaced atomically as a whole); returns their number.

    Masks are decoded one at a time, so memory holds one full-size mask however many there are.
    """
    count = 0
    with atomic_folder(folder) as temporary:
        with open(temporary / METADATA_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(METADATA_HEADER)
            for i, record in enumerate(records):
                mask = to_binary_mask(record["segmentation"])
                Image.fromarray(mask.astype(np.uint8) * 255).save(temporary / f"{i}.png")
                writer.writerow(metadata_row(i, record))
                count += 1
    return count


def read_png_metadata(folder: Path) -> list[dict[str, float]]:
    """The rows of a folder's metadata.csv as dicts of numbers (int where written as one)."""
    path = Path(folder) / METADATA_FILE
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != METADATA_HEADER:
            raise FormatError(f"{path}: unexpected header {reader.fieldnames}")
        return [{key: _number(value) for key, value in row.items()} for row in reader]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)
