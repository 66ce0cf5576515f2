"""A folder of images with PNG masks.

Two naming conventions, per image `NAME.EXT` (any image suffix):

- **instance map** `NAME.png`: one single-channel PNG (8- or 16-bit grey, or palette indices)
  whose value at each pixel is an instance id; every id not in `ignore_ids` (default: 0, the
  background) is one mask, in increasing id order.
- **binary masks** `NAME_0.png`, `NAME_1.png`, ...: one file per mask, any non-zero pixel is in
  the mask; masks in increasing number order.

Two layouts: **flat**, images and masks side by side (then an image cannot itself be a PNG named
like its instance map: use binary masks or the split layout), or **split**, `images/NAME.EXT`
with the masks in `masks/`. A PNG is a mask, not an image, when an image of its NAME (or of the
NAME before its `_<number>` suffix) exists.

Images are read upright (EXIF orientation applied), unless only the pixels as stored have the
masks' size (masks drawn by a tool that ignored EXIF; see `read_rgb`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segany.data.sample import DenseMasks, Sample, check_size, read_rgb
from segany.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_NUMBERED = re.compile(r"^(?P<stem>.+)_(?P<number>\d+)$")
_SINGLE_CHANNEL = ("1", "L", "P", "I", "I;16", "I;16B")


class MaskFolder:
    """Image + PNG mask pairs of a folder (see the module docstring for the conventions).

    Args:
        root: the folder (flat layout) or the parent of `images/` and `masks/` (split layout).
        ignore_ids: instance-map values that are not masks (e.g. (0, 255) for Pascal VOC, whose
            255 marks uncertain borders).
    """

    def __init__(self, root: str | Path, ignore_ids: tuple[int, ...] = (0,)) -> None:
        self.root = Path(root)
        self.ignore_ids = tuple(ignore_ids)
        if not self.root.is_dir():
            raise DataError(f"mask folder not found: {self.root}")
        if (self.root / "images").is_dir() and (self.root / "masks").is_dir():
            images = _image_files(self.root / "images")
            index = _MaskIndex(_image_files(self.root / "masks"))
        else:
            files = _image_files(self.root)
            index = _MaskIndex(files, images=files)
            images = [f for f in files if not index.is_mask(f)]
        self.pairs = [(image, index.masks_of(image)) for image in images]
        if not self.pairs:
            raise DataError(f"no images in {self.root}")
        unmasked = [image.name for image, masks in self.pairs if not masks]
        if unmasked:
            raise DataError(
                f"{len(unmasked)} image(s) in {self.root} have no mask file, e.g. {unmasked[0]}: "
                "expected NAME.png (instance ids) or NAME_0.png, NAME_1.png, ... (binary)"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_paths = self.pairs[index]
        instance_map = mask_paths[0].stem == image_path.stem
        # Masks first: their size tells the image's frame (upright, or as stored).
        arrays = [_read_png(path, instance_map=instance_map) for path in mask_paths]
        image = read_rgb(image_path, annotated_size=arrays[0].shape)
        size = image.shape[:2]
        what = "the instance map" if instance_map else "the mask"
        for array, path in zip(arrays, mask_paths, strict=True):
            check_size(array.shape, size, what, path)
        if instance_map:
            ids = arrays[0]
            values = [v for v in np.unique(ids) if int(v) not in self.ignore_ids]
            masks = ids[None] == np.asarray(values, dtype=ids.dtype)[:, None, None]
        else:
            masks = np.stack([array != 0 for array in arrays])  # (M, H, W) bool
        return Sample(image=image, masks=DenseMasks(masks), name=image_path.stem)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class _MaskIndex:
    """Mask PNGs by the image stem they belong to: an instance map `STEM.png` or numbered binary
    masks `STEM_<k>.png`.

    In a flat folder (`images` given: every file of the folder) a PNG is a mask only when an
    image of its stem exists: `STEM.png` beside `STEM.<other suffix>`, or `STEM_<k>.png` beside
    `STEM.*`; any other PNG is an image.
    """

    def __init__(self, candidates: list[Path], images: list[Path] | None = None) -> None:
        flat = images is not None
        suffixes: dict[str, set[str]] = defaultdict(set)
        for f in images or []:
            suffixes[f.stem].add(f.suffix.lower())
        self.instance: dict[str, Path] = {}
        self.numbered: dict[str, list[tuple[int, Path]]] = defaultdict(list)
        for c in candidates:
            if c.suffix.lower() != ".png":
                continue
            if not flat or suffixes.get(c.stem, set()) - {".png"}:
                self.instance[c.stem] = c
            numbered = _NUMBERED.match(c.stem)
            if numbered and (not flat or numbered["stem"] in suffixes):
                self.numbered[numbered["stem"]].append((int(numbered["number"]), c))
        self._masks = set(self.instance.values())
        self._masks |= {p for group in self.numbered.values() for _, p in group}

    def is_mask(self, path: Path) -> bool:
        return path in self._masks

    def masks_of(self, image: Path) -> list[Path]:
        """The instance map of `image`, or its binary masks in number order, or []. Raises
        `DataError` if it has both."""
        instance = self.instance.get(image.stem)
        numbered = [p for _, p in sorted(self.numbered.get(image.stem, []))]
        if instance is not None and numbered:
            raise DataError(
                f"{image.name} has both an instance map {instance.name} and numbered masks "
                f"({numbered[0].name}, ...); keep one convention"
            )
        return [instance] if instance is not None else numbered


def _read_png(path: Path, instance_map: bool) -> np.ndarray:
    """(H, W) integer array of a mask PNG. An instance map must be single-channel."""
    try:
        with Image.open(path) as opened:
            if instance_map and opened.mode not in _SINGLE_CHANNEL:
                raise DataError(
                    f"instance map {path} is {opened.mode}; it must be single-channel ids "
                    "(8/16-bit grey or palette). Colour-coded maps need converting to ids first"
                )
            if opened.mode in _SINGLE_CHANNEL:
                return np.asarray(opened)
            return np.asarray(opened.convert("L"))  # a colour or alpha binary mask
    except FileNotFoundError:
        raise DataError(f"mask file not found: {path}") from None
    except UnidentifiedImageError:
        raise DataError(f"cannot read mask {path}: not an image, or corrupt") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read mask {path}: {e}") from None
