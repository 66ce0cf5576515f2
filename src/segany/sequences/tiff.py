"""Multi-page TIFF files as sequences: pictures as a video, grey 16-bit stacks as a volume.

A TIFF whose pages are 16-bit or 32-bit grey (microscopy, CT exports) is a volume by default:
its pages windowed to 8 bits (`segany.sequences.window`), stored page-first as (Z, Y, X) with
an identity affine and unit spacing. Any other TIFF (RGB, palette, 8-bit grey pages) is a video
of its pages; `kind="volume"` reads 8-bit grey pages as a volume too. Pages are read one at a
time (PIL seeks to the page); every page must have the first page's size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segany.errors import ConfigError, ImageError
from segany.sequences.base import FrameSequence, VolumeInfo
from segany.sequences.layout import check_axis
from segany.sequences.volume import VolumeReader, VolumeSequence

# PIL modes of grey pages deeper than 8 bits.
DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class TiffPages:
    """The pages of a TIFF file, the file kept open; `page(k)` seeks to page k."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._image = Image.open(path)
            self._image.load()
        except FileNotFoundError:
            raise ImageError(f"TIFF file not found: {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"cannot read TIFF {path}: {e} (a corrupt file?)") from None
        self.count = int(getattr(self._image, "n_frames", 1))
        self.mode = self._image.mode
        self.width, self.height = self._image.size

    def page(self, index: int) -> Image.Image:
        """Page `index`, loaded; `ImageError` if it is unreadable or of another size."""
        try:
            self._image.seek(index)
            self._image.load()
        except (OSError, EOFError, SyntaxError, ValueError) as e:
            raise ImageError(f"cannot read page {index} of {self.path}: {e}") from None
        if self._image.size != (self.width, self.height):
            raise ImageError(
                f"page {index} of {self.path} is {self._image.width}x{self._image.height} but "
                f"page 0 is {self.width}x{self.height}: every page must have one size"
            )
        return self._image

    def close(self) -> None:
        self._image.close()


class TiffSequence(FrameSequence):
    """The pages of a TIFF as RGB frames (a video)."""

    kind = "video"

    def __init__(self, pages: TiffPages) -> None:
        super().__init__()
        self.pages = pages
        self.height, self.width = pages.height, pages.width

    def __len__(self) -> int:
        return self.pages.count

    def read_rgb(self, index: int) -> np.ndarray:
        return np.asarray(self.pages.page(index).convert("RGB"))  # (H, W, 3) uint8

    def close(self) -> None:
        self.pages.close()


class TiffReader(VolumeReader):
    """The grey pages of a TIFF as a (Z, Y, X) volume; pages are its own planes (axis 0)."""

    lazy_axis = 0

    def __init__(self, pages: TiffPages) -> None:
        self.pages = pages
        self.name = str(pages.path)
        self.shape = (pages.count, pages.height, pages.width)

    def read_lazy(self, index: int) -> np.ndarray:
        page = self.pages.page(index)
        if page.mode not in (*DEEP_GREY_MODES, "L"):
            raise ImageError(f"page {index} of {self.name} is {page.mode}, not grey")
        return np.asarray(page)  # (Y, X)

    def close(self) -> None:
        super().close()
        self.pages.close()


def open_tiff(
    path: Path,
    axis: int | None = None,
    window: str | Sequence[float] | None = None,
    kind: str | None = None,
) -> FrameSequence:
    """The pages of the TIFF at `path`: a `TiffSequence` (kind "video") or, for deep grey
    pages or `kind="volume"`, a `VolumeSequence` along `axis` (default 0, the pages; 1 and 2
    read the stack into memory). `axis` and `window` apply to volumes only.

    Raises `ImageError` for a missing or corrupt file, `ConfigError` for options that do not
    fit it (a window for pictures, a volume of colour pages, a bad axis or window).
    """
    pages = TiffPages(path)
    try:
        deep = pages.mode in DEEP_GREY_MODES
        as_volume = kind == "volume" or (kind is None and deep)
        if as_volume and pages.mode not in (*DEEP_GREY_MODES, "L"):
            raise ConfigError(f"{path} has {pages.mode} pages; a volume's pages must be grey")
        if not as_volume and not deep:
            if axis is not None or window is not None:
                raise ConfigError(
                    f"{path} is read as a video of pictures: axis and window apply to volumes "
                    '(give kind="volume" for a stack of 8-bit grey slices)'
                )
            return TiffSequence(pages)
        reader = TiffReader(pages)
        info = VolumeInfo(
            format="tiff",
            shape=reader.shape,
            axis=check_axis(axis, 3, default=0),
            affine=np.eye(4),
            spacing=(1.0, 1.0, 1.0),
            source=os.path.abspath(path),
        )
        sequence = VolumeSequence(reader, info, window)
        if not as_volume:  # kind="video" on a deep stack: windowed frames, no label volume
            sequence.kind, sequence.volume = "video", None
        return sequence
    except Exception:
        pages.close()
        raise
