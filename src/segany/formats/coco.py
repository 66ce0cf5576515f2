"""COCO instances: one file for a whole run, built without holding every mask in memory.

Each image's masks are first written to a small part file (atomically, so a run can resume);
`merge_coco_parts` then streams the parts into one instances file that pycocotools' `COCO()`
loads: images, annotations (COCO RLE segmentation with str counts, iscrowd 0, category 1,
`score` = predicted IoU, plus SAM's predicted_iou, stability_score, point_coords, crop_box) and
one category, "object".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from segany.errors import FormatError
from segany.formats.atomic import atomic_file, atomic_write_text
from segany.formats.fields import mask_fields
from segany.formats.jsonfile import read_json_file
from segany.formats.segmentation import to_coco_rle

CATEGORIES = ({"id": 1, "name": "object"},)


def write_coco_part(
    path: Path, file_name: str, width: int, height: int, records: Iterable[dict[str, Any]]
) -> None:
    """Write one image's masks as a part file (.json) for `merge_coco_parts`, atomically.

    Ids are not in the part: the merge numbers images and annotations for the whole run.
    """
    annotations = [
        {"segmentation": to_coco_rle(record["segmentation"]), **mask_fields(record)}
        for record in records
    ]
    part = {"image": {"file_name": file_name, "width": width, "height": height}}
    part["annotations"] = annotations
    atomic_write_text(path, json.dumps(part, separators=(",", ":")))


def _read_part(path: Path) -> dict[str, Any]:
    part = read_json_file(path, "COCO part file")
    if not isinstance(part, dict) or not {"image", "annotations"} <= part.keys():
        raise FormatError(f"{path} is not a COCO part file (needs 'image' and 'annotations')")
    return part


def merge_coco_parts(
    parts: Sequence[tuple[int, Path]], out_path: Path, description: str = ""
) -> tuple[int, int]:
    """Merge (image_id, part file) pairs, in that order, into the COCO file `out_path`.

    Annotation ids run 1, 2, ... over the images in order. The file is streamed: one part is
    in memory at a time (each part is read twice, images first, then annotations). Returns
    (number of images, number of annotations).
    """
    n_annotations = 0
    with atomic_file(out_path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        out.write('{"info":' + json.dumps({"description": description}) + ',"images":[')
        for i, (image_id, path) in enumerate(parts):
            image = _read_part(path)["image"]
            out.write(("," if i else "") + json.dumps({"id": image_id, **image}))
        out.write('],"annotations":[')
        for image_id, path in parts:
            for annotation in _read_part(path)["annotations"]:
                n_annotations += 1
                entry = {
                    "id": n_annotations,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "score": annotation["predicted_iou"],
                    **annotation,
                }
                prefix = "," if n_annotations > 1 else ""
                out.write(prefix + json.dumps(entry, separators=(",", ":")))
        out.write('],"categories":' + json.dumps(list(CATEGORIES)) + "}")
    return len(parts), n_annotations
