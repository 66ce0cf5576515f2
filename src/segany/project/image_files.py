"""Accepting image files: size and pixel limits before decoding, the formats the app takes,
the upright (EXIF-applied) frame every coordinate of the API refers to."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segany.errors import GoneError, ImageError

# PIL format name -> file suffix kept for the stored copy.
ACCEPTED_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp"}


class TooLargeError(ImageError):
    """An upload over the byte or pixel limit (HTTP 413)."""


@dataclass(frozen=True)
class CheckedImage:
    """An accepted image file: its bytes, their sha256, the suffix to store it under, and its
    upright size (width, height)."""

    data: bytes
    sha256: str
    suffix: str
    width: int
    height: int


@dataclass(frozen=True)
class StoredImage:
    """What the model needs of a stored image: its file, its content hash, its upright size."""

    path: Path
    sha256: str
    width: int
    height: int


def check_image_bytes(data: bytes, name: str, max_pixels: int) -> CheckedImage:
    """Validate an image file's bytes without trusting its header: the format must be one of
    ACCEPTED_FORMATS, the pixel count at most `max_pixels` (checked from the header, before
    decoding: a decompression bomb is refused cheaply), and every pixel must decode.

    Raises `ImageError` (or `TooLargeError`) saying what is wrong with `name`.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format not in ACCEPTED_FORMATS:
                raise ImageError(
                    f"{name}: {opened.format} images are not accepted; use "
                    f"{', '.join(ACCEPTED_FORMATS)}"
                )
            width, height = opened.size
            if width * height > max_pixels:
                raise TooLargeError(
                    f"{name}: {width}x{height} px is over the limit of {max_pixels:,} pixels"
                )
            suffix = ACCEPTED_FORMATS[opened.format]
            upright = ImageOps.exif_transpose(opened)
            upright.load()  # decodes every pixel: a truncated file fails here
            width, height = upright.size
    except ImageError:
        raise  # ours, from the checks above: already says what is wrong (and is a ValueError)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (PNG, JPEG, TIFF or WebP)") from None
    except Image.DecompressionBombError as e:
        raise TooLargeError(f"{name}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot decode the image ({e}); a truncated file?") from None
    return CheckedImage(data, hashlib.sha256(data).hexdigest(), suffix, width, height)


@contextmanager
def _stored_file(path: Path, name: str) -> Iterator[None]:
    """Errors of the `with` body's file access as the API gives them: `GoneError` naming the
    image `name` when its file was moved or deleted, `ImageError` when it cannot be read."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError):
        raise GoneError(
            f"image {name}: its file {path} was moved or deleted; put it back, or delete the "
            "image from the project"
        ) from None
    except OSError as e:
        raise ImageError(f"image {name}: cannot read its file {path} ({e.strerror or e})") from None


def read_file(path: Path, name: str) -> bytes:
    """A stored image file's bytes (errors: `_stored_file`)."""
    with _stored_file(path, name):
        return path.read_bytes()


def stat_file(path: Path, name: str) -> os.stat_result:
    """A stored image file's status (errors: `_stored_file`)."""
    with _stored_file(path, name):
        return path.stat()


def read_checked(image: StoredImage) -> np.ndarray:
    """(H, W, 3) uint8 upright pixels of a stored image, from bytes whose sha256 is the one
    recorded: pixels of an edited file never pass for (nor get cached under) the old content.
    `GoneError` for a missing file, `ImageError` for a changed or undecodable one."""
    from segany.formats.image import read_image

    data = read_file(image.path, image.path.name)
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise ImageError(
            f"image file {image.path} changed since it was recorded; open the image again"
        )
    try:
        return np.asarray(read_image(io.BytesIO(data)))
    except (OSError, ValueError) as e:
        raise ImageError(f"cannot decode {image.path} ({e})") from None


def read_upright(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a stored image, EXIF orientation applied."""
    from segany.formats.image import read_image

    return np.asarray(read_image(path))


def upright_file(path: Path) -> tuple[bytes, str]:
    """The stored image as the browser must show it: the file itself when it carries no
    orientation to apply (and is a format browsers show), else a PNG of the upright pixels.
    Returns (bytes, media type); `GoneError` when the file is gone."""
    data = read_file(path, path.name)
    with Image.open(io.BytesIO(data)) as opened:
        orientation = opened.getexif().get(0x0112, 1)
        kind = opened.format
    if orientation == 1 and kind in ("PNG", "JPEG", "WEBP"):
        return data, f"image/{kind.lower()}"
    buffer = io.BytesIO()
    Image.fromarray(read_upright(path)).save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"
