"""COCO instance annotations: one JSON file for many images, masks as polygons or RLEs.

Polygons are rasterised by pycocotools, so masks match COCO's own tools pixel for pixel; RLEs
(compressed or not) are decoded by `segany.formats.to_binary_mask`.

Images are found under an image folder, or, for the file `segany amg --format coco --out DIR`
writes, where `DIR/manifest.json` beside it says. They are read upright (EXIF orientation
applied); see `read_rgb` for datasets annotated on the pixels as stored.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from segany.data.images import ImageFolder, ManifestImages
from segany.data.sample import (
    EncodedMasks,
    Sample,
    annotated_size,
    check_size,
    field,
    read_json,
    read_rgb,
    rle_size,
)
from segany.errors import DataError
from segany.formats import to_binary_mask
from segany.formats.manifest import MANIFEST_FILE


class CocoDataset:
    """The images of a COCO instances file that have at least one (non-crowd) annotation.

    Args:
        annotation_file: e.g. `instances_val2017.json`.
        image_root: the folder that `file_name` entries are relative to; None: where the amg
            manifest beside `annotation_file` (`manifest.json`) says.
        include_crowd: keep `iscrowd` annotations (regions of many objects; off by default, as
            they are not single instances).
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path | None = None,
        include_crowd: bool = False,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        if image_root is not None and not Path(image_root).is_dir():
            raise DataError(f"COCO image folder not found: {image_root}")
        data = read_json(self.annotation_file)
        self.image_files = (
            ImageFolder(image_root)
            if image_root is not None
            else _manifest_images(self.annotation_file)
        )
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
        image_path = self.image_files.path(field(info, "file_name", str, where), where)
        segmentations = [ann["segmentation"] for ann in self.annotations[image_id]]
        image = read_rgb(image_path, annotated_size(info, segmentations))
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


def _manifest_images(annotation_file: Path) -> ManifestImages:
    """The images of the amg manifest beside `annotation_file`; `DataError` if there is none."""
    manifest = annotation_file.parent / MANIFEST_FILE
    other_form = f"coco:{annotation_file}:IMAGE_DIR"
    if not manifest.is_file():
        raise DataError(
            f"no image folder given and no {MANIFEST_FILE} beside {annotation_file} (as segany "
            f"amg --format coco writes): give the folder its file names are relative to, "
            f"{other_form}"
        )
    return ManifestImages(manifest, other_form)


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
