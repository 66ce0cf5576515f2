"""A sequence's stored masks as the files tracking tools read, with the writers `segany track`
uses (`segany.formats`), streamed frame by frame from the database:

- davis: a zip of one 8-bit palette PNG per frame, `<frame stem>.png`, pixel value = object id
  (0 the background; overlaps go to the higher score), every frame written;
- ytvis: YouTube-VIS JSON, one video, per object a mask (or null) on every frame;
- coco: COCO instances JSON, every frame with masks an image, every mask an annotation with
  its `object_id`;
- volume (volumes only): a zip of the label volume in the input's own format and geometry
  (NIfTI with its affine, TIFF stack; a DICOM series also gets a label series), as
  `segany.sequences.write_label_volume` writes it.

Categories: each object's project category by name ("object" for an uncategorised one).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from segany.formats.coco_frames import write_coco_frames
from segany.formats.sequence_png import labels_from_masks, write_label_png
from segany.formats.track_journal import FrameRecord
from segany.formats.ytvis import write_ytvis
from segany.sequences import LabelVolumeWriter, VolumeInfo

UNCATEGORISED = "object"


@dataclass(frozen=True)
class SequenceMeta:
    """name: the sequence's name (no suffix); stem(i): frame i's output file stem;
    categories: object id -> category name, for every object."""

    name: str
    frame_count: int
    height: int
    width: int
    stem: Callable[[int], str]
    categories: dict[int, str]


def _every_frame(meta: SequenceMeta, records: Iterable[FrameRecord]) -> Iterator[FrameRecord]:
    """A record for every frame 0..T-1 in order (an empty one where nothing is stored)."""
    items = iter(records)
    pending = next(items, None)
    for frame in range(meta.frame_count):
        if pending is not None and pending.frame == frame:
            yield pending
            pending = next(items, None)
        else:
            yield FrameRecord(frame, meta.stem(frame), {})


def write_davis_zip(path: Path, meta: SequenceMeta, records: Iterable[FrameRecord]) -> None:
    """A zip of `<stem>.png` label maps, (H, W) uint8 object ids, DAVIS's palette."""
    shape = (meta.height, meta.width)
    png = path.with_suffix(".png.partial")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zipped:
        for record in _every_frame(meta, records):
            labels = labels_from_masks(record.masks(shape), shape, record.scores())
            write_label_png(png, labels, palette=True, durable=False)
            zipped.write(png, f"{meta.stem(record.frame)}.png")
    png.unlink(missing_ok=True)


def write_ytvis_file(path: Path, meta: SequenceMeta, records: Iterable[FrameRecord]) -> None:
    write_ytvis(
        path,
        records,
        meta.frame_count,
        meta.height,
        meta.width,
        meta.categories,
        lambda i: f"{meta.name}/{meta.stem(i)}.jpg",
        description=f"segany annotator: {meta.name}",
    )


def write_coco_file(path: Path, meta: SequenceMeta, records: Iterable[FrameRecord]) -> None:
    write_coco_frames(
        path,
        records,
        meta.height,
        meta.width,
        meta.categories,
        lambda i: f"{meta.name}/{meta.stem(i)}.jpg",
        description=f"segany annotator: {meta.name}",
    )


def write_volume_zip(
    path: Path, meta: SequenceMeta, records: Iterable[FrameRecord], volume: VolumeInfo
) -> None:
    """A zip of the label volume (and, for DICOM, its label series) of `volume`."""
    folder = path.with_name(path.name + ".d")
    shape = (meta.height, meta.width)
    with LabelVolumeWriter(volume, folder) as writer:
        for record in _every_frame(meta, records):
            writer.write(record.frame, labels_from_masks(record.masks(shape), shape))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zipped.write(file, file.relative_to(folder).as_posix())


WRITERS = {
    "davis": (write_davis_zip, ".zip", "application/zip"),
    "ytvis": (write_ytvis_file, ".json", "application/json"),
    "coco": (write_coco_file, ".json", "application/json"),
}
