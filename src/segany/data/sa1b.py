"""SA-1B layout: a folder of images, each with a JSON file of COCO-RLE masks.

`name.json` holds `{"image": {"image_id", "file_name", "width", "height"}, "annotations":
[{"id", "segmentation": {"size": [H, W], "counts": str}, "area", "bbox", ...}]}` and the image is
`file_name` beside it (`name.jpg` when `file_name` is absent). This is what Meta's SA-1B tar
files hold and what `segany amg --format sa1b` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


class SA1BDataset:
    """The image + JSON pairs of one folder (not searched recursively), sorted by JSON name.

    Masks stay RLE-encoded until used (an SA-1B image has ~100 masks of ~1500x2250 px).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"SA-1B folder not found: {self.root}")
        self.annotation_files = sorted(self.root.glob("*.json"))
        if not self.annotation_files:
            raise DataError(f"no SA-1B annotation files (*.json) in {self.root}")

    def __len__(self) -> int:
        return len(self.annotation_files)

    def __getitem__(self, index: int) -> Sample:
        path = self.annotation_files[index]
        record = read_json(path)
        info = field(record, "image", dict, path)
        file_name = info.get("file_name", f"{path.stem}.jpg")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(f"{path}: image 'file_name' must be a non-empty string")
        image = read_rgb(path.parent / file_name)
        size = image.shape[:2]
        if "height" in info and "width" in info:
            check_size((info["height"], info["width"]), size, "the size recorded", path)
        rles = [_segmentation(ann, size, path) for ann in field(record, "annotations", list, path)]
        masks = EncodedMasks(size, rles, decode=to_binary_mask, area=compressed_rle_area)
        return Sample(image=image, masks=masks, name=path.stem)


def _segmentation(annotation: Any, size: tuple[int, int], path: Path) -> dict[str, Any]:
    """An annotation's COCO RLE, checked to be one and to be of the image's size."""
    rle = field(annotation, "segmentation", dict, path)
    label = f"annotation {annotation.get('id', '?')}"
    if "counts" not in rle or "size" not in rle:
        raise DataError(f"{path}: {label} is not a COCO RLE (needs 'size' and 'counts')")
    check_size(rle_size(rle, f"{path}: {label}"), size, f"the mask of {label}", path)
    return rle


def compressed_rle_area(rle: dict[str, Any]) -> int:
    """Pixel count of a COCO RLE with str counts, read off the runs without decoding."""
    counts = rle["counts"]
    counts = counts.encode("ascii") if isinstance(counts, str) else counts
    return int(coco_mask.area({"size": rle["size"], "counts": counts}))
