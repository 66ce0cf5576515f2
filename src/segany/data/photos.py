"""Photo textures for synthetic scenes: backgrounds and object fills cropped from real photographs,
so that a model meets boundaries between natural textures and not only between procedural ones.

Nothing is committed: the photos are read at run time from installed packages.
  - scikit-image's sample photos, the ones inside its wheel (no download): `SKIMAGE_PHOTOS`.
  - Debian packages' photographs, where installed: `DEBIAN_PHOTO_DIRS` (e.g. `apt-get install
    mate-backgrounds`). They serve the train split only, so validation and test scenes depend
    on scikit-image alone and are the same on every machine with the same scikit-image.

The split is by source photo: no photo serves two splits, so a test scene never shows a pixel a
training scene could show (the two motorcycle photos, a stereo pair of one scene, are both in
train). A crop is scaled, turned, mirrored and colour-jittered; grey photos are tinted with a
random two-colour ramp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from segany.data.textures import contrasting_colour, random_colour
from segany.errors import ConfigError, DataError

# scikit-image `skimage.data` loaders per split, chosen so that each split has colour photos,
# grey ones and texture-like ones; all are files inside the wheel (checked on 0.26), so none
# triggers a download. Left out: drawings and charts (logo, horse, phantom, chessboard,
# colorwheel) and images too small to crop (microaneurysms, lfw_subset).
SKIMAGE_PHOTOS = {
    "train": (
        "rocket",
        "motorcycle_left",
        "motorcycle_right",
        "hubble_deep_field",
        "retina",
        "immunohistochemistry",
        "camera",
        "cell",
        "grass",
        "moon",
        "page",
        "text",
    ),
    "val": ("chelsea", "brick", "clock"),
    "test": ("astronaut", "coffee", "gravel", "coins"),
}
# (Debian package, folder of its photographs): train-split photos when the folder exists.
DEBIAN_PHOTO_DIRS = (("mate-backgrounds", "/usr/share/backgrounds/mate/nature"),)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_SIDE = 1024  # px; larger photos are shrunk once at load (crops then alias less)
MIN_SIDE = 256  # px; smaller image files in a photo folder are icons, not photos

_ZOOM = (0.4, 1.5)  # photo px per scene px, log-uniform: from 2.5x enlarged to 1.5x reduced


@dataclass(frozen=True)
class Photo:
    """One source photograph: `name` ("skimage:astronaut" or a file path) and `image`, a PIL
    image in mode "RGB" or "L" (grey), at most MAX_SIDE px on its long side."""

    name: str
    image: Image.Image

    @property
    def grey(self) -> bool:
        return self.image.mode == "L"


def load_photos(
    split: str, debian_dirs: Sequence[tuple[str, str]] = DEBIAN_PHOTO_DIRS
) -> list[Photo]:
    """The photos of `split` ("train", "val" or "test"): scikit-image's, then for train those
    found in `debian_dirs` (file names sorted, so the order is the same on every machine).

    Raises `DataError` when scikit-image is not installed, `ConfigError` for an unknown split.
    """
    if split not in SKIMAGE_PHOTOS:
        raise ConfigError(f"unknown split {split!r}; expected one of {sorted(SKIMAGE_PHOTOS)}")
    photos = [
        Photo(f"skimage:{name}", _shrink(_skimage_photo(name))) for name in SKIMAGE_PHOTOS[split]
    ]
    if split == "train":
        for _, folder in debian_dirs:
            photos += _folder_photos(Path(folder))
    return photos


def _skimage_photo(name: str) -> Image.Image:
    try:
        from skimage import data
    except ImportError:
        raise DataError(
            "photo scenes crop scikit-image's sample photos: pip install scikit-image "
            "(or segany[train])"
        ) from None
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        pixels = left if name == "motorcycle_left" else right
    else:
        pixels = getattr(data, name)()
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise DataError(f"scikit-image's {name} photo is {pixels.dtype}, expected uint8")
    return Image.fromarray(pixels[..., :3] if pixels.ndim == 3 else pixels)


def _folder_photos(folder: Path) -> list[Photo]:
    """The photos in `folder` (not its subfolders), by file name; none if it does not exist."""
    if not folder.is_dir():
        return []
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PHOTO_SUFFIXES or not path.is_file():
            continue
        try:
            with Image.open(path) as image:
                image.load()
                converted = image.convert("L" if image.mode in ("L", "I;16") else "RGB")
        except OSError as e:
            raise DataError(f"cannot read the photo {path}: {e}") from None
        if min(converted.size) >= MIN_SIDE:
            photos.append(Photo(str(path), _shrink(converted)))
    return photos


def _shrink(image: Image.Image) -> Image.Image:
    scale = MAX_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(round(image.width * scale), 1), max(round(image.height * scale), 1))
    return image.resize(size, Image.Resampling.LANCZOS)


@lru_cache(maxsize=3)
def photo_textures(split: str) -> PhotoTextures:
    """The `PhotoTextures` of a split's photos (`load_photos(split)`), loaded once a process."""
    return PhotoTextures(load_photos(split))


class PhotoTextures:
    """Random crops of `photos` as float32 RGB 0-255 textures: the photo side of the scene
    generator, in place of `textures.background` and `textures.fill`."""

    def __init__(self, photos: Sequence[Photo]) -> None:
        if not photos:
            raise DataError("no photos to crop textures from")
        self.photos = tuple(photos)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(photo.name for photo in self.photos)

    def crop(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """(height, width, 3) float32: a crop of a random photo, scaled, turned by a random
        angle, mirrored half the time and colour-jittered."""
        photo = self.photos[rng.integers(len(self.photos))]
        angle = rng.uniform(0, 2 * np.pi)
        mirror = -1.0 if rng.random() < 0.5 else 1.0
        c, s = abs(np.cos(angle)), abs(np.sin(angle))
        # The photo area under the turned window, per unit zoom: it must fit in the photo.
        reach_x, reach_y = width * c + height * s, width * s + height * c
        fits = min(photo.image.width / reach_x, photo.image.height / reach_y)
        zoom = min(np.exp(rng.uniform(np.log(_ZOOM[0]), np.log(_ZOOM[1]))), fits)
        # The window's centre in the photo, anywhere the turned window stays inside it.
        half_x, half_y = zoom * reach_x / 2, zoom * reach_y / 2
        sx = rng.uniform(half_x, max(photo.image.width - half_x, half_x))
        sy = rng.uniform(half_y, max(photo.image.height - half_y, half_y))
        # PIL's affine map takes scene (x, y) to photo (a x + b y + c, d x + e y + f).
        cos, sin = zoom * np.cos(angle), zoom * np.sin(angle)
        a, b, d, e = mirror * cos, -sin, mirror * sin, cos
        coefficients = (a, b, sx - a * width / 2 - b * height / 2,
                        d, e, sy - d * width / 2 - e * height / 2)  # fmt: skip
        warped = photo.image.transform(
            (width, height), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR
        )
        pixels = np.asarray(warped, dtype=np.float32)  # (h, w, 3) or (h, w)
        return _tint(rng, pixels) if photo.grey else _jitter(rng, pixels)

    def background(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """(height, width, 3) float32 RGB 0-255, a crop filling the whole scene."""
        return self.crop(rng, height, width)

    def fill(
        self, rng: np.random.Generator, mask: np.ndarray, under: np.ndarray, min_contrast: float
    ) -> np.ndarray:
        """(K, 3) float32: the pixels of an object whose shape is the (h, w) bool `mask` (K
        pixels set), painted over pixels of mean colour `under` (3,). When the crop's mean
        colour lies within `min_contrast` (RGB distance) of `under`, the crop is shifted to a
        contrasting mean, keeping its texture, so that the object can be seen."""
        pixels = self.crop(rng, mask.shape[0], mask.shape[1])[mask]  # (K, 3)
        mean = pixels.mean(axis=0)
        if np.linalg.norm(mean - under) < min_contrast:
            pixels = pixels + (contrasting_colour(rng, under, min_contrast) - mean)
        return np.clip(pixels, 0, 255)


def _jitter(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    """(h, w, 3) RGB -> the same with random saturation, per-channel gain and brightness."""
    grey = pixels.mean(axis=-1, keepdims=True)  # (h, w, 1)
    pixels = grey + np.float32(rng.uniform(0.5, 1.3)) * (pixels - grey)
    pixels = pixels * rng.uniform(0.75, 1.25, 3).astype(np.float32)
    return np.clip(pixels + np.float32(rng.uniform(-25, 25)), 0, 255)


def _tint(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    """(h, w) grey -> (h, w, 3): grey values mapped onto a ramp between two random colours at
    least 80 apart (a quarter of the time left grey)."""
    if rng.random() < 0.25:
        dark, light = np.zeros(3, np.float32), np.full(3, 255.0, np.float32)
    else:
        dark = random_colour(rng)
        light = contrasting_colour(rng, dark, 80.0)
    t = pixels[..., None] / np.float32(255)  # (h, w, 1)
    return dark + t * (light - dark)
