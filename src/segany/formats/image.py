"""Reading image files as viewers show them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from segany.errors import ImageError

# Suffixes treated as images when a folder is searched (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def read_image(path: Path, upright: bool = True) -> Image.Image:
    """The image at `path` as RGB; with `upright`, turned by its EXIF orientation as viewers
    show it (dataset annotations instead refer to the pixels as stored: upright=False).

    Raises `ImageError` if the file is missing, not an image, or corrupt.
    """
    try:
        with Image.open(path) as opened:
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
