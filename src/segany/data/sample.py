"""The one structure every dataset returns: an image and its masks, dense or decoded on demand."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segany.errors import DataError, ImageError
from segany.formats.image import read_image


class Masks:
    """M binary masks of one (H, W) image. Subclasses hold them dense or encoded; all give
    `len`, `masks[i]` -> (H, W) bool, `take(indices)` -> (K, H, W) bool and `areas()`."""

    size: tuple[int, int]  # (H, W)

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(K, H, W) bool, the masks at `indices`, decoding only those."""
        indices = [int(i) for i in indices]
        out = np.zeros((len(indices), *self.size), dtype=bool)
        for k, i in enumerate(indices):
            out[k] = self[i]
        return out

    def to_numpy(self) -> np.ndarray:
        """(M, H, W) bool, every mask."""
        return self.take(range(len(self)))

    def areas(self) -> np.ndarray:
        """(M,) int64 pixel counts."""
        return np.array([int(self[i].sum()) for i in range(len(self))], dtype=np.int64)


class DenseMasks(Masks):
    """Masks held as one (M, H, W) bool array."""

    def __init__(self, masks: np.ndarray) -> None:
        if masks.ndim != 3:
            raise ValueError(f"expected (M, H, W) masks, got shape {masks.shape}")
        self.array = masks.astype(bool, copy=False)
        self.size = (int(masks.shape[1]), int(masks.shape[2]))

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.array[index]

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.array[np.asarray(indices, dtype=np.intp)]

    def to_numpy(self) -> np.ndarray:
        return self.array

    def areas(self) -> np.ndarray:
        return self.array.reshape(len(self.array), -1).sum(axis=1, dtype=np.int64)


class EncodedMasks(Masks):
    """Masks kept encoded (COCO RLEs, polygons) and decoded one at a time on access, so a
    sample with hundreds of masks costs little memory until the trainer picks a few.

    Args:
        size: (H, W) of every mask.
        items: one encoded mask each.
        decode: item -> (H, W) bool.
        area: item -> pixel count without decoding, if the encoding allows it.
    """

    def __init__(
        self,
        size: tuple[int, int],
        items: Sequence[Any],
        decode: Callable[[Any], np.ndarray],
        area: Callable[[Any], int] | None = None,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.items = list(items)
        self._decode = decode
        self._area = area

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._decode(self.items[index])

    def areas(self) -> np.ndarray:
        if self._area is None:
            return super().areas()
        return np.array([self._area(item) for item in self.items], dtype=np.int64)


@dataclass
class Sample:
    """One training or evaluation example.

    Attributes:
        image: (H, W, 3) uint8 RGB as viewers show the file (EXIF orientation applied), the
            frame of `segany predict` and `segany amg`; the pixels as stored only for a
            dataset annotated on those (see `read_rgb`).
        masks: M masks of size (H, W).
        name: where it came from (a file stem, a COCO image id, a pool index).
        parent: (M,) int, the mask containing each mask (-1 for none), when known (synthetic).
    """

    image: np.ndarray
    masks: Masks
    name: str = ""
    parent: np.ndarray | None = None


def read_rgb(path: Path, annotated_size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file, turned upright by its EXIF orientation.

    annotated_size: (H, W) of the image's annotations (a recorded size, a mask's size), when
        known. If only the pixels as stored have that size, they are returned unturned: the
        dataset was annotated by a tool that ignored EXIF. A size that fits neither frame is
        left for `check_size` to report.

    Raises `DataError`.
    """
    try:
        return np.asarray(read_image(path, annotated_size=annotated_size))
    except ImageError as e:
        raise DataError(str(e)) from None


def check_size(found: tuple[int, int], expected: tuple[int, int], what: str, where: Path) -> None:
    """Raise `DataError` if a (H, W) size differs from the image's."""
    if tuple(found) != tuple(expected):
        raise DataError(
            f"{what} in {where} is {found[0]}x{found[1]} (HxW) but its image is "
            f"{expected[0]}x{expected[1]}; annotations of another image, or of a resized copy?"
        )


def annotated_size(info: Any, segmentations: Sequence[Any]) -> tuple[int, int] | None:
    """(H, W) one image's annotations were made at, for `read_rgb`: the image entry's
    "height" and "width", else the "size" of its first RLE mask; None when neither is given
    (polygons only). Values are not checked here: `check_size` reports bad ones."""
    if isinstance(info, dict) and "height" in info and "width" in info:
        return info["height"], info["width"]
    for segmentation in segmentations:
        if isinstance(segmentation, dict) and isinstance(segmentation.get("size"), list):
            if len(segmentation["size"]) == 2:
                return segmentation["size"][0], segmentation["size"][1]
    return None


def read_json(path: Path) -> Any:
    """The parsed JSON file at `path`. Raises `DataError` if it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not an annotation file") from None
    except OSError as e:  # e.g. permission denied
        raise DataError(f"cannot read {path}: {e}") from None
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for binary content
        raise DataError(f"cannot read {path}: not valid JSON ({e})") from None


def field(record: Any, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    """`record[key]`, checked to be of `kind`. Raises `DataError` naming the file and the key."""
    if not isinstance(record, dict) or key not in record:
        raise DataError(f"{where}: missing key {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: {key!r} has an unexpected type {type(value).__name__}")
    return value


def rle_size(rle: dict[str, Any], where: str) -> tuple[int, int]:
    """(H, W) of a COCO RLE; `DataError` naming `where` if its "size" is not two ints."""
    size = rle["size"]
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        raise DataError(f"{where}: RLE 'size' must be [H, W], got {size!r}")
    return size[0], size[1]
