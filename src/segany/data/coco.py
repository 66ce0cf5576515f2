"""COCO instance annotations: one JSON file for many images, masks as polygons or RLEs.

Polygons are rasterised by pycocotools, so masks match COCO's own tools pixel for pixel; RLEs
(compressed or not) are decoded by `segany.formats.to_binary_mask`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from segany.data.sample import (
    EncodedMasks,
    Sample,
    check_size,
    field,
    read_json,
    read_rgb,
    rle_size,
)
from segany.errors import DataError
from segany.formats import to_binary_mask


class CocoDataset:
    """The images of a COCO instances file that have at least one (non-crowd) annotation.

    Args:
        annotation_file: e.g. `instances_val2017.json`.
        image_root: the folder that `file_name` entries are relative to.
        include_crowd: keep `iscrowd` annotations (regions of many objects; off by default, as
            they are not single instances).
    """

    def __init__(
        self, annotation_file: str | Path, image_root: str | Path, include_crowd: bool = False
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        if not self.image_root.is_dir():
            raise DataError(f"COCO image folder not found: {self.image_root}")
        data = read_json(self.annotation_file)
        where = self.annotation_file
        self.images: dict[int, dict[str, Any]] = {}
        for info in field(data, "images", list, where):
            self.images[field(info, "id", int, where)] = info
        self.annotations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in field(data, "annotations", list, where):
            image_id = field(ann, "image_id", int, where)
            if image_id not in self.images:
                raise DataError(
                    f"{where}: annotation {ann.get('id', '?')} refers to image_id {image_id}, "
                    "which is not in 'images'"
                )
            field(ann, "segmentation", (list, dict), where)
            if include_crowd or not ann.get("iscrowd", 0):
                self.annotations[image_id].append(ann)
        self.image_ids = sorted(i for i in self.images if self.annotations.get(i))
        if not self.image_ids:
            raise DataError(f"{where}: no image has an annotation to train on")

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        info = self.images[image_id]
        where = self.annotation_file
        image = read_rgb(self.image_root / field(info, "file_name", str, where))
        size = image.shape[:2]
        if "height" in info and "width" in info:
            check_size((info["height"], info["width"]), size, f"image {image_id}", where)
        segmentations = []
        for ann in self.annotations[image_id]:
            segmentation = ann["segmentation"]
            _check_segmentation(segmentation, size, f"annotation {ann.get('id', '?')}", where)
            segmentations.append(segmentation)
        # A partial, not a lambda, so samples pickle across DataLoader worker processes.
        masks = EncodedMasks(size, segmentations, decode=partial(decode_segmentation, size=size))
        return Sample(image=image, masks=masks, name=str(image_id))


def _check_segmentation(segmentation: Any, size: tuple[int, int], label: str, where: Path) -> None:
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or "size" not in segmentation:
            raise DataError(f"{where}: {label} is not a COCO RLE (needs 'size' and 'counts')")
        check_size(rle_size(segmentation, f"{where}: {label}"), size, f"the mask of {label}", where)
        return
    for polygon in segmentation:
        if (
            not isinstance(polygon, list)
            or len(polygon) < 6
            or len(polygon) % 2
            or not all(isinstance(v, (int, float)) for v in polygon)
        ):
            raise DataError(
                f"{where}: {label} has a polygon that is not a flat list of >= 3 x, y pairs"
            )


def decode_segmentation(segmentation: Any, size: tuple[int, int]) -> np.ndarray:
    """A COCO segmentation (RLE dict, or list of polygons [x0, y0, x1, y1, ...] in pixels) ->
    (H, W) bool."""
    if isinstance(segmentation, dict):
        return to_binary_mask(segmentation)
    height, width = size
    return to_binary_mask(coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width)))
