"""A project as training data: COCO instances (RLE or polygon masks), SA-1B JSON per image, or
PNG masks per image, each written with the `manifest.json` that `segany eval` / `segany train`
data specs use to find the images (`coco:OUT/annotations.json`, `sa1b:OUT`), so an exported
project trains the next model as it is: SAM's data engine loop.

Only accepted annotations are exported. File names in the outputs are "<image id>_<name>",
unique within the project.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from segany.errors import ConfigError
from segany.formats.atomic import atomic_file, atomic_write_text
from segany.formats.manifest import MANIFEST_FILE, ManifestEntry, read_manifest, write_manifest
from segany.formats.polygons import mask_to_polygons
from segany.formats.segmentation import to_binary_mask

FORMATS = ("coco", "coco-polygons", "sa1b", "png")
COCO_FILE = "annotations.json"
DEFAULT_CATEGORY = "object"


def export_name(image: Any) -> str:
    """The image's unique name in an export."""
    return f"{image.id}_{image.file_name}"


def export_project(
    pairs: Iterable[tuple[Any, list[Any]]], categories: list[Any], out: Path, fmt: str
) -> Path:
    """Write the (image, annotations) `pairs` to the folder `out` in format `fmt`, with its
    manifest; returns the main output (the COCO file, or the folder)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    entries: list[ManifestEntry] = []
    pairs = _recording(pairs, entries)
    if fmt.startswith("coco"):
        main = out / COCO_FILE
        document = coco_document(pairs, categories, polygons=fmt == "coco-polygons")
        atomic_write_text(main, json.dumps(document, separators=(",", ":")))
    elif fmt == "sa1b":
        main = out
        for image, found in pairs:
            document = sa1b_document(image, found, categories)
            atomic_write_text(out / f"{export_name(image)}.json", json.dumps(document))
    else:
        main = out
        names = {c.id: c.name for c in categories}
        for image, found in pairs:
            write_png_folder(out / export_name(image), image, found, names)
    _merge_manifest(out / MANIFEST_FILE, entries)
    return main


def _recording(pairs, entries: list[ManifestEntry]) -> Iterator[tuple[Any, list[Any]]]:
    for index, (image, found) in enumerate(pairs, start=1):
        entries.append(ManifestEntry(index, export_name(image), Path(image.stored_path)))
        yield image, [a for a in found if a.accepted]


def _merge_manifest(path: Path, entries: list[ManifestEntry]) -> None:
    known = read_manifest(path) if path.is_file() else {}
    known.update({entry.file_name: entry for entry in entries})
    write_manifest(path, known.values())


def coco_document(
    pairs: Iterable[tuple[Any, list[Any]]], categories: list[Any], polygons: bool
) -> dict[str, Any]:
    """COCO instances: images (id 1, 2, ... with segany_id), annotations (segmentation as COCO
    RLE or polygons, area, bbox XYWH, iscrowd 0, score, source, author), categories (plus
    "object" for annotations without one)."""
    ids = {c.id: c.id for c in categories}
    default_id = max(ids, default=0) + 1
    images, annotations, uncategorised = [], [], False
    for number, (image, image_annotations) in enumerate(pairs, start=1):
        images.append(
            {
                "id": number,
                "file_name": export_name(image),
                "width": image.width,
                "height": image.height,
                "segany_id": image.id,
            }
        )
        for annotation in image_annotations:
            category = annotation.category_id if annotation.category_id in ids else default_id
            uncategorised |= category == default_id
            segmentation: Any = annotation.rle
            if polygons:
                segmentation = mask_to_polygons(to_binary_mask(annotation.rle))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": category,
                    "segmentation": segmentation,
                    "area": annotation.area,
                    "bbox": list(annotation.bbox),
                    "iscrowd": 0,
                    "score": annotation.score,
                    "source": annotation.source,
                    "author": annotation.author,
                }
            )
    cats = [{"id": c.id, "name": c.name, "supercategory": "object"} for c in categories]
    if uncategorised:
        cats.append({"id": default_id, "name": DEFAULT_CATEGORY, "supercategory": "object"})
    return {
        "info": {"description": "segany annotation project"},
        "images": images,
        "annotations": annotations,
        "categories": cats,
    }


def sa1b_document(image: Any, annotations: list[Any], categories: list[Any]) -> dict[str, Any]:
    """SA-1B layout of one image (what `segany amg --format sa1b` writes), plus category names."""
    names = {c.id: c.name for c in categories}
    return {
        "image": {
            "image_id": 0,
            "file_name": export_name(image),
            "width": image.width,
            "height": image.height,
        },
        "annotations": [
            {
                "id": i,
                "segmentation": a.rle,
                "area": a.area,
                "bbox": list(a.bbox),
                "predicted_iou": a.score,
                "category": names.get(a.category_id),
                "source": a.source,
                "author": a.author,
            }
            for i, a in enumerate(annotations)
        ],
    }


def write_png_folder(folder: Path, image: Any, annotations: list[Any], names: dict) -> None:
    """One 0 / 255 PNG per annotation (0.png, 1.png, ...) and metadata.csv (id, category,
    area, bbox, source)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [["index", "category", "area", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "source"]]
    for i, annotation in enumerate(annotations):
        mask = to_binary_mask(annotation.rle)
        with atomic_file(folder / f"{i}.png") as temporary:
            PILImage.fromarray(mask.astype(np.uint8) * 255).save(temporary)
        rows.append(
            [
                i,
                names.get(annotation.category_id, ""),
                annotation.area,
                *annotation.bbox,
                annotation.source,
            ]
        )
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    atomic_write_text(folder / "metadata.csv", text.getvalue())
