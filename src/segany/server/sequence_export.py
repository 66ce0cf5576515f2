"""A sequence's stored masks as the files tracking tools read, streamed frame by frame:

- DAVIS: one 8-bit palette PNG per frame, `<frame stem>.png`, pixel value = object id (0 the
  background; where objects overlap the higher id is drawn last), every frame written;
- YouTube-VIS: one JSON file, one video, per object a `segmentations` list with a COCO RLE (or
  null where it is absent) for every frame;
- COCO per frame: one COCO instances JSON, every frame an image (`file_name` `<stem>.jpg`,
  `frame_index`), every object's mask on it an annotation with its `object_id`.

Frames come as (frame, [(object_id, rle, area, bbox xywh)]) in frame order (frames without
masks may be left out); object ids and category ids come from the objects' table.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

FrameItems = Iterable[tuple[int, list[tuple[int, dict, int, tuple]]]]


@dataclass(frozen=True)
class SequenceMeta:
    """name: the sequence's name; stems(i): frame i's output file stem; categories: [{"id",
    "name"}]; object_categories: object id -> category id (or None)."""

    name: str
    frame_count: int
    height: int
    width: int
    stem: Callable[[int], str]
    categories: list[dict]
    object_categories: dict[int, int | None]


def davis_palette() -> list[int]:
    """The 256-colour palette DAVIS and PASCAL VOC annotations use (bits of the index spread
    over the high bits of r, g and b), flat [r0, g0, b0, r1, ...]."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [r, g, b]
    return palette


def _every_frame(meta: SequenceMeta, frames: FrameItems) -> Iterator[tuple[int, list]]:
    """Every frame 0..T-1 in order, with its masks (none for frames left out)."""
    items = iter(frames)
    pending = next(items, None)
    for frame in range(meta.frame_count):
        if pending is not None and pending[0] == frame:
            yield frame, pending[1]
            pending = next(items, None)
        else:
            yield frame, []


def write_davis_zip(path: Path, meta: SequenceMeta, frames: FrameItems) -> None:
    """A zip of `<stem>.png` label maps, (H, W) uint8 object ids, with the DAVIS palette."""
    palette = davis_palette()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for frame, masks in _every_frame(meta, frames):
            labels = np.zeros((meta.height, meta.width), dtype=np.uint8)  # (H, W) object ids
            for object_id, rle, _, _ in sorted(masks, key=lambda item: item[0]):
                labels[_decode(rle)] = object_id
            picture = Image.fromarray(labels, mode="L").convert("P")
            picture.putpalette(palette)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            zipped.writestr(f"{meta.stem(frame)}.png", buffer.getvalue(), zipfile.ZIP_STORED)


def write_ytvis(path: Path, meta: SequenceMeta, frames: FrameItems) -> None:
    """YouTube-VIS's JSON: videos, categories, and one annotation per object whose lists hold
    an entry for every frame (null where the object is absent)."""
    count = meta.frame_count
    per_object: dict[int, dict[str, list]] = {}
    for frame, masks in frames:
        for object_id, rle, area, bbox in masks:
            lists = per_object.setdefault(
                object_id, {key: [None] * count for key in ("segmentations", "areas", "bboxes")}
            )
            lists["segmentations"][frame] = rle
            lists["areas"][frame] = area
            lists["bboxes"][frame] = list(bbox)
    video = {
        "id": 1,
        "name": meta.name,
        "width": meta.width,
        "height": meta.height,
        "length": count,
        "file_names": [f"{meta.name}/{meta.stem(i)}.jpg" for i in range(count)],
    }
    annotations = [
        {
            "id": index + 1,
            "video_id": 1,
            "object_id": object_id,
            "category_id": meta.object_categories.get(object_id),
            "iscrowd": 0,
            "width": meta.width,
            "height": meta.height,
            "length": 1,
            **lists,
        }
        for index, (object_id, lists) in enumerate(sorted(per_object.items()))
    ]
    document = {
        "info": {"description": f"segany export of {meta.name}"},
        "videos": [video],
        "categories": meta.categories,
        "annotations": annotations,
    }
    path.write_text(json.dumps(document), encoding="utf-8")


def write_coco_frames(path: Path, meta: SequenceMeta, frames: FrameItems) -> None:
    """COCO instances, one image per frame, streamed to the file (no list of every mask)."""
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"info": ' + json.dumps({"description": f"segany export of {meta.name}"}))
        out.write(', "categories": ' + json.dumps(meta.categories) + ', "images": [')
        for frame in range(meta.frame_count):
            image = {
                "id": frame + 1,
                "file_name": f"{meta.stem(frame)}.jpg",
                "width": meta.width,
                "height": meta.height,
                "frame_index": frame,
                "video": meta.name,
            }
            out.write(("," if frame else "") + json.dumps(image))
        out.write('], "annotations": [')
        number = 0
        for frame, masks in frames:
            for object_id, rle, area, bbox in masks:
                number += 1
                annotation = {
                    "id": number,
                    "image_id": frame + 1,
                    "category_id": meta.object_categories.get(object_id),
                    "object_id": object_id,
                    "segmentation": rle,
                    "area": area,
                    "bbox": list(bbox),
                    "iscrowd": 0,
                }
                out.write(("," if number > 1 else "") + json.dumps(annotation))
        out.write("]}")


def _decode(rle: dict) -> np.ndarray:
    """(H, W) bool of a COCO compressed RLE with str counts."""
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(coded).astype(bool)


WRITERS = {
    "davis": (write_davis_zip, ".zip", "application/zip"),
    "ytvis": (write_ytvis, ".json", "application/json"),
    "coco": (write_coco_frames, ".json", "application/json"),
}
