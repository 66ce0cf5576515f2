"""Label PNGs of a tracked sequence: one 8-bit PNG per frame whose pixel value is the object id
(0 background), DAVIS's annotation layout.

`png` writes grey ("L") PNGs; `davis` writes the same values as palette ("P") PNGs with
DAVIS's palette, so that viewers show each object in its colour while readers still get the
ids (PIL opens a "P" PNG as its indices).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from segany.errors import FormatError
from segany.formats.atomic import atomic_file


@lru_cache(maxsize=1)
def davis_palette() -> bytes:
    """DAVIS's 256-colour palette (that of PASCAL VOC), 768 bytes R, G, B.

    Colour i spreads the bits of i over the channels, most significant bit first: bit 0 of i
    goes to the red channel's top bit, bit 1 to green's, bit 2 to blue's, then bits 3-5 to each
    channel's next bit, and so on (index 1 is dark red (128, 0, 0), 2 dark green, 3 olive).
    """
    palette = bytearray()
    for index in range(256):
        rgb = [0, 0, 0]
        bits = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette.extend(rgb)
    return bytes(palette)


def labels_from_masks(
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    scores: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Objects' (H, W) bool masks -> (H, W) uint8 labels (0 background, else the object id).

    Where masks overlap the pixel goes to the object with the higher score (then the higher
    id): objects are painted in ascending (score, id) order. Ids must be 1..255.
    """
    labels = np.zeros(shape, dtype=np.uint8)
    scores = scores or {}
    for object_id in sorted(masks, key=lambda i: (scores.get(i, 0.0), i)):
        if not 1 <= object_id <= 255:
            raise FormatError(f"object id {object_id} does not fit an 8-bit label PNG (1..255)")
        mask = masks[object_id]
        if mask.shape != shape:
            raise FormatError(f"object {object_id}'s mask is {mask.shape}, the frame {shape}")
        labels[mask] = object_id
    return labels


def write_label_png(
    path: Path, labels: np.ndarray, palette: bool = False, durable: bool = True
) -> None:
    """Write (H, W) uint8 `labels` to `path` atomically: grey, or with DAVIS's palette.

    durable=False skips the fsyncs (`atomic_file`): a killed process still leaves the file
    whole or absent, a power cut may not (`label_png_is_whole` finds such a file).
    """
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise FormatError(f"labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    image = Image.fromarray(labels)  # "L"
    if palette:
        image.putpalette(davis_palette())  # "L" -> "P", the values kept as indices
    with atomic_file(path, durable=durable) as temporary:
        # Level 1: label images are mostly runs of one value; 2x faster than the default for
        # a few percent more bytes.
        image.save(temporary, format="PNG", compress_level=1)


def label_png_is_whole(path: Path) -> bool:
    """Whether `path` is a readable PNG whose chunks' checksums hold (no pixel decoding)."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def read_label_png(path: Path) -> np.ndarray:
    """A label PNG ("L" or "P") -> (H, W) uint8 object ids."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise FormatError(f"{path} is a {image.mode} image, not an 8-bit label PNG")
            return np.asarray(image).copy()
    except OSError as e:
        raise FormatError(f"cannot read the label PNG {path}: {e}") from None
