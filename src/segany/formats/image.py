"""Reading image files as viewers show them.

One pixel frame everywhere: every reader turns an image by its EXIF orientation (as viewers,
`segany predict` and `segany amg` do), so masks written by one command fit the image another
command reads. The one exception is a dataset whose annotations were made on the pixels as
stored (a tool that ignored EXIF): see `annotated_size`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from segany.errors import ImageError

# Suffixes treated as images when a folder is searched (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

_ORIENTATION = 0x0112  # the EXIF tag ImageOps.exif_transpose applies
_SWAPS_AXES = (5, 6, 7, 8)  # orientations that turn by 90 degrees (transposed or rotated)


def read_image(
    path: Path, upright: bool = True, annotated_size: tuple[int, int] | None = None
) -> Image.Image:
    """The image at `path` as RGB; with `upright`, turned by its EXIF orientation as viewers
    show it; with `upright=False`, the pixels as stored.

    annotated_size: (H, W) of annotations made for this file, when known. If the stored pixels
        have that size and the upright image does not (a 90-degree EXIF orientation, and a
        dataset annotated on the stored pixels), the stored pixels are returned even with
        `upright`. When both frames have that size (no rotation, or a square image), upright.

    Raises `ImageError` if the file is missing, not an image, or corrupt.
    """
    try:
        with Image.open(path) as opened:
            if upright and annotated_size is not None:
                upright = not _only_stored_fits(opened, annotated_size)
            image = ImageOps.exif_transpose(opened) if upright else opened
            return image.convert("RGB")  # convert() reads every pixel: truncation shows here
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder; give an image file") from None
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {path}: not an image format PIL knows, or corrupt") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL signals truncated or damaged data with any of these, depending on the codec.
        raise ImageError(
            f"cannot read image {path}: {e} (a corrupt or partly copied file?)"
        ) from None


def _only_stored_fits(opened: Image.Image, size: tuple[int, int]) -> bool:
    """Whether (H, W) `size` is the stored pixels' size but not the upright image's."""
    stored = (opened.height, opened.width)
    turned = opened.getexif().get(_ORIENTATION) in _SWAPS_AXES
    upright = (opened.width, opened.height) if turned else stored
    return tuple(size) == stored != upright
