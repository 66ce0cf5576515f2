"""SA-1B layout: one JSON file per image, as in Meta's SA-1B data set.

    {"image": {"image_id", "file_name", "width", "height"},
     "annotations": [{"id", "segmentation" (COCO RLE, str counts), "area", "bbox" (XYWH),
                      "predicted_iou", "stability_score", "point_coords" ([[x, y]]),
                      "crop_box" (XYWH)}, ...]}

Annotation ids number the masks of one image 0, 1, ... in the generator's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from segany.errors import FormatError
from segany.formats.atomic import atomic_write_text
from segany.formats.fields import mask_fields
from segany.formats.jsonfile import read_json_file
from segany.formats.segmentation import to_coco_rle


def sa1b_document(
    image_id: int, file_name: str, width: int, height: int, records: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """The SA-1B dict of one image from the generator's records (any output mode)."""
    annotations = [
        {"id": i, "segmentation": to_coco_rle(record["segmentation"]), **mask_fields(record)}
        for i, record in enumerate(records)
    ]
    image = {"image_id": image_id, "file_name": file_name, "width": width, "height": height}
    return {"image": image, "annotations": annotations}


def write_sa1b(
    path: Path,
    image_id: int,
    file_name: str,
    width: int,
    height: int,
    records: Iterable[dict[str, Any]],
) -> None:
    """Write one image's masks to `path` (.json) atomically."""
    document = sa1b_document(image_id, file_name, width, height, records)
    atomic_write_text(path, json.dumps(document, separators=(",", ":")))


def read_sa1b(path: Path) -> dict[str, Any]:
    """Load an SA-1B JSON file; `FormatError` if it lacks the "image" / "annotations" parts.

    Decode a mask with `segany.formats.to_binary_mask(annotation["segmentation"])`.
    """
    document = read_json_file(path, "SA-1B file")
    if not isinstance(document, dict) or not {"image", "annotations"} <= document.keys():
        raise FormatError(f"{path} is not an SA-1B file: expected 'image' and 'annotations'")
    image = document["image"]
    missing = [k for k in ("image_id", "file_name", "width", "height") if k not in image]
    if missing:
        raise FormatError(f"{path}: the 'image' entry lacks {', '.join(missing)}")
    return document
