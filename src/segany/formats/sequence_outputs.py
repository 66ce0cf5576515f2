"""Where a tracked sequence's results go, frame by frame: `SequenceOutputs` writes each frame's
output as soon as it is tracked (a label PNG for `png`/`davis`), records it in the track
journal, and at the end assembles what needs the whole sequence (the YouTube-VIS or COCO
JSON; a volume's label volume).

    OUT/<frame stem>.png           png, davis: one 8-bit label PNG per tracked frame
    OUT/<name>.json                ytvis, coco: one JSON file for the sequence
    OUT/<name>_labels.nii.gz|.tif  volumes: the label volume (NIfTI for NIfTI and DICOM inputs,
                                   with the input's affine; TIFF for TIFF stacks)
    OUT/<name>_labels_dicom/       DICOM inputs: also a DICOM label series, a file per slice
    OUT/.segany-track*.json[l]     the journal (see `segany.formats.track_journal`)

Memory is bounded whatever the length: a frame's masks are released once written; the journal
keeps byte offsets; the JSON formats hold RLE strings while they assemble.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from segany.errors import ConfigError
from segany.formats.coco_frames import write_coco_frames
from segany.formats.sequence_png import label_png_is_whole, labels_from_masks, write_label_png
from segany.formats.track_journal import FrameRecord, TrackJournal, encode_mask
from segany.formats.ytvis import write_ytvis
from segany.sequences.base import VolumeInfo

FORMATS = ("png", "davis", "ytvis", "coco")
PNG_FORMATS = ("png", "davis")
# A label volume's suffix for each input format (a DICOM series gets a NIfTI with its geometry).
VOLUME_SUFFIXES = {"nifti": ".nii.gz", "dicom": ".nii.gz", "tiff": ".tif"}


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ConfigError(f"unknown output format {name!r}; choose one of {', '.join(FORMATS)}")
    return name


def planned_outputs(fmt: str, name: str, volume: VolumeInfo | None) -> list[str]:
    """The files of OUT (relative names) besides the frame PNGs that a run writes."""
    outputs = [] if fmt in PNG_FORMATS else [f"{name}.json"]
    if volume is not None:
        outputs.append(label_volume_name(name, volume))
        if volume.format == "dicom":  # a DICOM label series beside the NIfTI
            outputs.append(f"{name}_labels_dicom")
    return outputs


def label_volume_name(name: str, volume: VolumeInfo) -> str:
    return f"{name}_labels{VOLUME_SUFFIXES.get(volume.format, '.nii.gz')}"


class SequenceOutputs:
    """The outputs of one run into `journal.out`.

    fmt: one of FORMATS; shape: the frames' (H, W); objects: object id -> category name;
    file_name(frame): the frame's file name in the JSON formats; name: the sequence's name
    (names the JSON file and the label volume); volume: the input's `VolumeInfo` for volumes
    (a label volume is written), else None; length: the sequence's frame count.
    """

    def __init__(
        self,
        journal: TrackJournal,
        fmt: str,
        shape: tuple[int, int],
        length: int,
        objects: Mapping[int, str],
        file_name: Callable[[int], str],
        name: str,
        volume: VolumeInfo | None = None,
    ) -> None:
        self.journal = journal
        self.fmt = check_format(fmt)
        self.shape = shape
        self.length = length
        self.objects = dict(objects)
        self.file_name = file_name
        self.name = name
        self.volume = volume

    @property
    def out(self) -> Path:
        return self.journal.out

    def write(
        self,
        frame: int,
        stem: str,
        masks: Mapping[int, np.ndarray],
        scores: Mapping[int, float],
        step: int = 0,
    ) -> None:
        """Write frame `frame`'s output (stem: its file stem) and journal it.

        masks: object id -> (H, W) bool; scores: object id -> confidence in [0, 1]; step: the
        tracking pass writing it (see `FrameRecord`).
        """
        if self.fmt in PNG_FORMATS:
            labels = labels_from_masks(masks, self.shape, scores)
            # Not synced: the journal line below is, and holds the masks, so a PNG a power
            # cut spoils is found and rewritten from it when the run resumes (`finish`).
            path = self.out / f"{stem}.png"
            write_label_png(path, labels, palette=self.fmt == "davis", durable=False)
        objects = {i: (encode_mask(m), float(scores.get(i, 0.0))) for i, m in masks.items()}
        self.journal.append(FrameRecord(frame, stem, objects, step))

    def finish(self) -> list[Path]:
        """Assemble the whole-sequence outputs from the journal; returns the files written
        (for PNG formats the folder). A journaled frame PNG that is missing (deleted by hand)
        or, for frames an earlier process wrote, damaged (a power cut) is written again from
        the journal."""
        written: list[Path] = []
        if self.fmt in PNG_FORMATS:
            for record in self.journal.records():
                path = self.out / f"{record.name}.png"
                earlier = self.journal.written_earlier(record.frame)
                if not path.is_file() or (earlier and not label_png_is_whole(path)):
                    masks = record.masks(self.shape)
                    labels = labels_from_masks(masks, self.shape, record.scores())
                    write_label_png(path, labels, palette=self.fmt == "davis")
            written.append(self.out)
        else:
            path = self.out / f"{self.name}.json"
            height, width = self.shape
            description = f"segany track: {self.name}"
            if self.fmt == "ytvis":
                write_ytvis(
                    path,
                    self.journal.records(),
                    self.length,
                    height,
                    width,
                    self.objects,
                    self.file_name,
                    description,
                )
            else:
                write_coco_frames(
                    path,
                    self.journal.records(),
                    height,
                    width,
                    self.objects,
                    self.file_name,
                    description,
                )
            written.append(path)
        if self.volume is not None:
            written.append(self._write_label_volume())
            series = self.out / f"{self.name}_labels_dicom"
            if self.volume.format == "dicom" and series.is_dir():
                written.append(series)
        return written

    def label_slices(self) -> Iterator[tuple[int, np.ndarray]]:
        """(frame, (H, W) uint8 labels) of every tracked frame, from the journal, one at a
        time (untracked frames are left out: background in the label volume)."""
        for record in self.journal.records():
            masks = record.masks(self.shape)
            yield record.frame, labels_from_masks(masks, self.shape, record.scores())

    def _write_label_volume(self) -> Path:
        from segany.sequences import write_label_volume

        assert self.volume is not None
        path = self.out / label_volume_name(self.name, self.volume)
        return write_label_volume(path, self.volume, self.label_slices())
