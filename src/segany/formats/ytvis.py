"""YouTube-VIS JSON for a tracked sequence: one video, one annotation per object holding its
mask on every frame.

    videos:      [{id: 1, file_names: [one per frame], height, width, length}]
    annotations: [{id, video_id: 1, category_id, segmentations: [RLE or null per frame],
                   areas: [int or null], bboxes: [[x, y, w, h] or null], iscrowd: 0,
                   height, width, length: 1, object_id}]
    categories:  [{id, name}]

null marks a frame where the object is absent (empty mask) or that was not tracked. RLEs are
COCO's compressed form (str counts), as YouTube-VIS results are written and its API reads.
Assembled from the track journal's records; memory holds the RLE strings, never the masks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from segany.formats.atomic import atomic_file
from segany.formats.coco_frames import category_table, rle_fields
from segany.formats.track_journal import FrameRecord


def write_ytvis(
    path: Path,
    records: Iterable[FrameRecord],
    length: int,
    height: int,
    width: int,
    objects: Mapping[int, str],
    file_name: Callable[[int], str],
    description: str = "",
) -> int:
    """Write the YouTube-VIS file `path` for a `length`-frame video from the tracked frames'
    `records`. objects: object id -> category name; file_name(frame) -> the frame's
    "video/frame.jpg". Returns the number of annotations (objects) written."""
    categories, category_of = category_table(objects)
    tracks: dict[int, list[dict[str, Any] | None]] = {o: [None] * length for o in objects}
    for record in records:
        for object_id, (counts, _) in record.objects.items():
            fields = rle_fields(counts, height, width)
            if fields["area"] > 0:
                tracks.setdefault(object_id, [None] * length)[record.frame] = fields
    video = {
        "id": 1,
        "file_names": [file_name(i) for i in range(length)],
        "height": height,
        "width": width,
        "length": length,
    }
    with atomic_file(path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        out.write('{"info":' + json.dumps({"description": description}))
        out.write(',"videos":[' + json.dumps(video) + '],"annotations":[')
        for n, object_id in enumerate(sorted(tracks)):
            frames = tracks[object_id]
            annotation = {
                "id": n + 1,
                "video_id": 1,
                "category_id": category_of.get(object_id, 1),
                "segmentations": [None if f is None else f["segmentation"] for f in frames],
                "areas": [None if f is None else f["area"] for f in frames],
                "bboxes": [None if f is None else f["bbox"] for f in frames],
                "iscrowd": 0,
                "height": height,
                "width": width,
                "length": 1,
                "object_id": object_id,
            }
            out.write(("," if n else "") + json.dumps(annotation))
        out.write('],"categories":' + json.dumps(categories) + "}")
    return len(tracks)
