"""A folder of frame files as a `FrameSequence`, in natural name order."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from segany.errors import ImageError
from segany.formats.image import read_image
from segany.sequences.base import FrameSequence

# Suffixes of frame files in a folder (compared in lower case); other files are ignored.
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def natural_key(name: str) -> tuple:
    """Sort key that orders runs of digits by their value: "2.png" before "10.png",
    "frame9" before "frame10"; case-insensitive, ties broken by the name itself."""
    parts = re.split(r"(\d+)", name.lower())  # str, digits, str, digits, ..., str
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def frame_files(folder: Path) -> list[Path]:
    """The frame files of `folder` (suffix in `FRAME_EXTENSIONS`, not hidden), naturally sorted."""
    names = [
        n
        for n in os.listdir(folder)
        if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith(".")
    ]
    return [folder / n for n in sorted(names, key=natural_key)]


class FolderSequence(FrameSequence):
    """The frames of a folder of JPEG, PNG, TIFF or BMP files sorted by name (natural order),
    each read when asked, turned by its EXIF orientation as viewers show it. `name(i)` is
    frame i's file stem (so outputs are named after their frames). Every frame must have the
    first frame's size: another size raises `ImageError` when that frame is read.

    Raises `ImageError` for a folder without frame files, or two frames with one stem
    ("a.png" and "a.jpg": their outputs would have one name).
    """

    kind = "video"

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__()
        folder = Path(folder)
        if not folder.is_dir():
            raise ImageError(f"frame folder not found: {folder}")
        self.paths = frame_files(folder)
        if not self.paths:
            raise ImageError(
                f"no frames in {folder}: give a folder of {'/'.join(FRAME_EXTENSIONS)} files "
                "(sorted by name), a video file, a TIFF, a NIfTI file or a DICOM series folder"
            )
        stems = [p.stem for p in self.paths]
        if len(set(stems)) != len(stems):
            twins = sorted({s for s in stems if stems.count(s) > 1})
            raise ImageError(
                f"{folder} has frame files that share a name but not a suffix ({twins[:3]}); "
                "their outputs would overwrite each other: keep one of each"
            )
        self._last: tuple[int, np.ndarray] | None = None
        first = read_image(self.paths[0])
        self.width, self.height = first.size

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[self.check_index(index)].stem

    def read_rgb(self, index: int) -> np.ndarray:
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        image = read_image(self.paths[index])
        if (image.height, image.width) != (self.height, self.width):
            raise ImageError(
                f"frame {self.paths[index].name} is {image.width}x{image.height} but the first "
                f"frame ({self.paths[0].name}) is {self.width}x{self.height}: every frame of a "
                "sequence must have one size (resize or remove that frame)"
            )
        rgb = np.asarray(image)  # (H, W, 3) uint8
        rgb.flags.writeable = False  # kept for the next call: a caller must copy to change it
        self._last = (index, rgb)
        return rgb
