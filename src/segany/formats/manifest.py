"""The manifest of an amg output folder: where the images whose masks it holds are.

`segany amg` writes masks, never copies of the images, so a reader needs to find each image
again: the SA-1B files and the COCO file name it by `file_name`, relative to the input folder
it was found in (several folders may feed one run). `OUT/manifest.json` maps those names to
the image files:

    {"format": "segany-amg-manifest", "version": 1,
     "images": [{"image_id": 1, "file_name": "sub/b.jpg", "path": "../photos/sub/b.jpg"}, ...]}

`path` is relative to the manifest's folder when the image and the folder share a folder
below the file system root, so that the outputs and the images can be moved together (one
folder holding both, e.g. `photos/` and `masks/` side by side); otherwise it is absolute.
`image_id` is the image's id in the last run that listed it (its 1-based position in that
run's sorted inputs). Entries are sorted by `file_name`, which is unique: the outputs are
named after it, and readers look images up by it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from segany.errors import FormatError
from segany.formats.atomic import atomic_write_text
from segany.formats.jsonfile import read_json_file

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "segany-amg-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One image: its id and name in the outputs, and its file (absolute, once read)."""

    image_id: int
    file_name: str
    path: Path


def read_manifest(path: Path) -> dict[str, ManifestEntry]:
    """The entries of the manifest at `path` by file_name, with absolute image paths.

    Raises `FormatError` if the file is missing, not JSON, or not a manifest.
    """
    document = read_json_file(path, "amg manifest")
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{path} is not a {MANIFEST_FORMAT} file")
    if document.get("version") != MANIFEST_VERSION:
        raise FormatError(
            f"{path} is a version {document.get('version')!r} manifest; this segany reads "
            f"version {MANIFEST_VERSION}: rerun segany amg to rewrite it"
        )
    images = document.get("images")
    if not isinstance(images, list):
        raise FormatError(f"{path}: 'images' must be a list")
    folder = Path(os.path.abspath(path.parent))
    entries = {}
    for i, item in enumerate(images):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("image_id"), int)
            and isinstance(item.get("file_name"), str)
            and isinstance(item.get("path"), str)
            and item["file_name"]
            and item["path"]
        ):
            raise FormatError(
                f"{path}: image entry {i} must have an int 'image_id' and non-empty "
                f"'file_name' and 'path' strings, got {item!r}"
            )
        # Joining keeps an absolute path as it is; normpath folds the "../" of relative ones.
        image = Path(os.path.normpath(folder / item["path"]))
        entries[item["file_name"]] = ManifestEntry(item["image_id"], item["file_name"], image)
    return entries


def write_manifest(path: Path, entries: Iterable[ManifestEntry]) -> None:
    """Write `entries` (image paths absolute or relative to the working folder) to the
    manifest `path` atomically, sorted by file_name, paths stored as the module says."""
    folder = os.path.abspath(path.parent)
    images = [
        {"image_id": e.image_id, "file_name": e.file_name, "path": stored_path(e.path, folder)}
        for e in sorted(entries, key=lambda e: e.file_name)
    ]
    # One image a line: readable, and a diff of two runs' manifests shows the images that moved.
    lines = ",\n".join(json.dumps(image) for image in images)
    head = f'{{"format": "{MANIFEST_FORMAT}", "version": {MANIFEST_VERSION}, "images": ['
    atomic_write_text(path, f"{head}\n{lines}\n]}}\n")


def stored_path(image: Path, folder: str) -> str:
    """`image` as the manifest in `folder` (absolute) stores it: relative (POSIX separators)
    when the two share a folder below the file system root, else absolute."""
    image_path = os.path.abspath(image)
    try:
        common = os.path.commonpath([image_path, folder])
    except ValueError:  # Windows: different drives
        return image_path
    if common == os.path.dirname(common):  # the root ("/", "C:\\") is its own parent
        return image_path
    return Path(os.path.relpath(image_path, folder)).as_posix()
