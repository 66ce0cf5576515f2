"""COCO instances per frame for a tracked sequence: every tracked frame an image, every object
with a non-empty mask on it an annotation, which pycocotools' `COCO()` loads.

    images:      [{id: frame + 1, file_name, height, width, frame_index}]
    annotations: [{id, image_id, category_id, segmentation: RLE (str counts), area,
                   bbox: [x, y, w, h], iscrowd: 0, score, object_id}]
    categories:  [{id, name}]

`object_id` keeps an object's identity across frames (COCO has no tracks of its own). Written
from the track journal's records, one frame at a time, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from segany.formats.atomic import atomic_file
from segany.formats.track_journal import FrameRecord


def category_table(objects: Mapping[int, str]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Object id -> category name  ->  (COCO categories [{id, name}], object id -> category
    id); categories are numbered 1, 2, ... in the order of their first object's id."""
    categories: dict[str, int] = {}
    for object_id in sorted(objects):
        categories.setdefault(objects[object_id], len(categories) + 1)
    table = [{"id": i, "name": name} for name, i in categories.items()]
    return table, {o: categories[objects[o]] for o in objects}


def rle_fields(counts: str, height: int, width: int) -> dict[str, Any]:
    """A mask's COCO RLE, its area in pixels and its bbox [x, y, w, h] (pixels, from the
    top-left corner of the top-left pixel)."""
    rle = {"size": [height, width], "counts": counts.encode("ascii")}
    return {
        "segmentation": {"size": [height, width], "counts": counts},
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
    }


def write_coco_frames(
    path: Path,
    records: Iterable[FrameRecord],
    height: int,
    width: int,
    objects: Mapping[int, str],
    file_name: Callable[[int], str],
    description: str = "",
) -> tuple[int, int]:
    """Write the COCO file `path` from the tracked frames' `records` (in frame order).

    objects: object id -> category name, for every object; file_name(frame) -> the image's
    file name. Returns (images, annotations) written.
    """
    categories, category_of = category_table(objects)
    n_images = n_annotations = 0
    images: list[str] = []  # the images' JSON, small; annotations are streamed
    with atomic_file(path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        out.write('{"info":' + json.dumps({"description": description}) + ',"annotations":[')
        for record in records:
            image_id = record.frame + 1  # COCO ids start at 1
            image = {
                "id": image_id,
                "file_name": file_name(record.frame),
                "height": height,
                "width": width,
                "frame_index": record.frame,
            }
            images.append(json.dumps(image))
            n_images += 1
            for object_id, (counts, score) in sorted(record.objects.items()):
                fields = rle_fields(counts, height, width)
                if fields["area"] == 0:
                    continue
                n_annotations += 1
                annotation = {
                    "id": n_annotations,
                    "image_id": image_id,
                    "category_id": category_of.get(object_id, 1),
                    **fields,
                    "iscrowd": 0,
                    "score": score,
                    "object_id": object_id,
                }
                out.write(("," if n_annotations > 1 else "") + json.dumps(annotation))
        out.write('],"images":[' + ",".join(images) + "]")
        out.write(',"categories":' + json.dumps(categories) + "}")
    return n_images, n_annotations
