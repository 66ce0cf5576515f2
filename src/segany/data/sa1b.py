"""SA-1B layout: one JSON file of COCO-RLE masks per image.

`name.json` holds `{"image": {"image_id", "file_name", "width", "height"}, "annotations":
[{"id", "segmentation": {"size": [H, W], "counts": str}, "area", "bbox", ...}]}`. Where the
image of `file_name` is depends on who wrote the folder:

- Meta's SA-1B tar files: beside its JSON (`name.jpg` when `file_name` is absent); one folder,
  not searched recursively.
- `segany amg --format sa1b --out DIR`: where `DIR/manifest.json` says (`file_name` is relative
  to the input folder, and nested inputs give nested JSON files, `DIR/sub/b.json`); searched
  recursively, leaving out hidden files and the run's own files (manifest.json, coco_parts/...).
- any folder, with `image_root` given: `image_root / file_name`, searched recursively too.

Images are read upright (EXIF orientation applied), as amg read them; see `read_rgb` for
datasets annotated on the pixels as stored.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

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
from segany.engine.outputs import RESERVED_NAMES
from segany.errors import DataError
from segany.formats import to_binary_mask
from segany.formats.manifest import MANIFEST_FILE


class SA1BDataset:
    """The SA-1B JSON files of a folder with their images (see the module docstring for where
    the images are found), sorted by the JSON files' paths.

    Args:
        root: the folder of JSON files.
        image_root: the folder `file_name` entries are relative to; None: the manifest of an
            amg output folder if `root` has one, else the JSON file's own folder.

    Masks stay RLE-encoded until used (an SA-1B image has ~100 masks of ~1500x2250 px).
    """

    def __init__(self, root: str | Path, image_root: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"SA-1B folder not found: {self.root}")
        self.images: ImageFolder | ManifestImages | None = None
        if image_root is not None:
            if not Path(image_root).is_dir():
                raise DataError(f"image folder not found: {image_root}")
            self.images = ImageFolder(image_root)
        elif (self.root / MANIFEST_FILE).is_file():
            self.images = ManifestImages(self.root / MANIFEST_FILE, f"sa1b:{self.root}:IMAGE_ROOT")
        # Meta's folders are flat; an amg output nests JSON files as its inputs were nested.
        recursive = self.images is not None
        self.annotation_files = _annotation_files(self.root, recursive)
        if not self.annotation_files:
            where = "under" if recursive else "in"
            raise DataError(f"no SA-1B annotation files (*.json) {where} {self.root}")

    def __len__(self) -> int:
        return len(self.annotation_files)

    def __getitem__(self, index: int) -> Sample:
        path = self.annotation_files[index]
        record = read_json(path)
        info = field(record, "image", dict, path)
        file_name = info.get("file_name", f"{path.stem}.jpg")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(f"{path}: image 'file_name' must be a non-empty string")
        annotations = field(record, "annotations", list, path)
        segmentations = [a.get("segmentation") for a in annotations if isinstance(a, dict)]
        image_path = (
            path.parent / file_name if self.images is None else self.images.path(file_name, path)
        )
        image = read_rgb(image_path, annotated_size(info, segmentations))
        size = image.shape[:2]
        if "height" in info and "width" in info:
            check_size((info["height"], info["width"]), size, "the size recorded", path)
        rles = [_segmentation(ann, size, path) for ann in annotations]
        masks = EncodedMasks(size, rles, decode=to_binary_mask, area=compressed_rle_area)
        name = path.relative_to(self.root).with_suffix("").as_posix()  # "sub/b" for sub/b.json
        return Sample(image=image, masks=masks, name=name)


def _annotation_files(root: Path, recursive: bool) -> list[Path]:
    """The *.json files of `root` in sorted order; when `recursive`, also those of its
    subfolders, leaving out hidden files (an interrupted write's temporary files) and amg's
    own files (manifest.json, a COCO file or its parts)."""
    if not recursive:
        return sorted(p for p in root.glob("*.json") if p.is_file())
    found = []
    for path in root.rglob("*.json"):
        parts = PurePosixPath(path.relative_to(root).as_posix()).parts
        if parts[0] in RESERVED_NAMES or any(part.startswith(".") for part in parts):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found)


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
