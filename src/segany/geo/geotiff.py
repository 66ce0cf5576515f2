"""GeoTIFFs as SAM sees them: the chosen bands stretched to (H, W, 3) uint8 RGB, nodata as a
validity mask, read one window at a time; prompts in any CRS moved onto the raster's pixels.

    with open_geotiff("scene.tif", bands=(4, 3, 2)) as raster:
        window = Window(0, 0, 1024, 1024)
        rgb, valid = raster.read(window)            # (h, w, 3) uint8, (h, w) bool
        cols_rows = raster.to_pixels(xy, "EPSG:4326")

Pixel coordinates are GDAL's: (col, row) with (0, 0) the top-left corner of the top-left pixel;
the raster's affine transform maps them to its CRS. Nothing here reads more than the window
asked for, except the stretch statistics, which come from a decimated read of at most
`STATS_SIDE` pixels a side. A window may be read decimated (`out_shape`); GDAL then reads the
coarsest overview that is still at least as fine, and `GeoRaster.max_pixels` bounds what one
read may decode, counted before the read (`decoded_pixels`). Any failure to read pixels after
the file opened (a damaged or truncated file) is a `DataError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from segany.errors import ConfigError, DataError, PromptError
from segany.geo.projection import transformer
from segany.geo.windows import decimated_shape

# How non-uint8 bands become 0..255: "auto" leaves uint8 as it is and stretches the rest by
# percentiles; "percent": 2nd..98th percentile of each band's valid pixels (the usual display
# stretch of GIS viewers, robust to a few hot pixels); "minmax": each band's full range; "none":
# values clipped to 0..255 unchanged.
STRETCHES = ("auto", "percent", "minmax", "none")
PERCENTILES = (2.0, 98.0)
# The stretch statistics are taken on a decimated read of at most this many pixels a side, so
# opening a raster costs the same memory whatever its size.
STATS_SIDE = 1024


def crs_text(crs: Any) -> str:
    """A CRS given as "EPSG:4326", a WKT string, or a rasterio / pyproj CRS, as WKT (a hashable
    spelling for `projection.transformer`); `PromptError` for a name pyproj does not know."""
    try:
        return pyproj.CRS.from_user_input(crs).to_wkt()
    except pyproj.exceptions.CRSError as e:
        raise PromptError(f"unknown CRS {crs!r} ({e}); give e.g. EPSG:4326 or EPSG:32633") from None


def parse_bands(text: str) -> tuple[int, ...]:
    """'3,2,1' -> (3, 2, 1): 1-based band numbers as GDAL counts them."""
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--bands {text!r}: expected 1 or 3 comma-separated band numbers, e.g. 3,2,1"
        ) from None
    return bands


class GeoRaster:
    """An open georeferenced raster and the way its pixels become SAM's RGB input.

    bands: 1-based band numbers shown as red, green, blue (one band: shown as grey); default
        the first three, or the only band.
    stretch: one of STRETCHES (see there).
    max_pixels: the most source pixels one read may decode (a window of the raster or of the
        overview GDAL reads it from); None: no bound. When reading the whole raster decimated
        for the stretch statistics would decode more, they come from the first window read.
    Use `open_geotiff` / `GeoRaster.from_bytes`; close with `close()` or a `with` block.
    """

    def __init__(
        self,
        dataset: Any,
        name: str,
        bands: Sequence[int] | None = None,
        stretch: str = "auto",
        memory_file: MemoryFile | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.name = name
        self.max_pixels = max_pixels
        self._memory_file = memory_file
        self._stretch = stretch
        try:
            if dataset.crs is None:
                raise DataError(
                    f"{name} has no coordinate reference system (CRS), so its pixels cannot be "
                    "placed on a map; assign one first, e.g. gdal_edit.py -a_srs EPSG:32633 "
                    f"{name}"
                )
            self.bands = _check_bands(bands, dataset.count, name)
            if stretch not in STRETCHES:
                raise ConfigError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
            self.ranges = self._stretch_ranges(stretch)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        name: str,
        bands: Sequence[int] | None = None,
        stretch: str = "auto",
        max_pixels: int | None = None,
    ) -> GeoRaster:
        """A raster held in memory (an upload), read through GDAL's virtual file system."""
        memory_file = MemoryFile(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dataset = memory_file.open()
        except RasterioIOError as e:
            memory_file.close()
            raise DataError(f"{name}: not a raster GDAL can read ({e})") from None
        return cls(dataset, name, bands, stretch, memory_file, max_pixels)

    # ---- what the raster is --------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.dataset.width

    @property
    def height(self) -> int:
        return self.dataset.height

    @property
    def crs(self) -> Any:
        return self.dataset.crs

    @property
    def transform(self) -> Affine:
        """Pixel (col, row) -> raster CRS (x, y)."""
        return self.dataset.transform

    def window_transform(self, window: Window, out_shape: tuple[int, int] | None = None) -> Affine:
        """Pixel (col, row) of `window` read as `out_shape` (h, w; default the window's own
        size) -> raster CRS (x, y)."""
        transform = self.dataset.window_transform(window)
        if out_shape is None:
            return transform
        height, width = out_shape
        return transform @ Affine.scale(window.width / width, window.height / height)

    def overview_factor(self, decimation: float) -> int:
        """The decimation of the level a read that shrinks the raster `decimation` times comes
        from: the largest overview factor (of every chosen band) not coarser than asked for, 1
        (the full resolution) when there is none. GDAL may take a slightly coarser overview
        (its oversampling threshold), never a finer one: pixel counts made with this factor
        are upper bounds."""
        factor = None
        for band in self.bands:
            usable = [f for f in self.dataset.overviews(band) if f <= decimation]
            best = max(usable, default=1)
            factor = best if factor is None else min(factor, best)
        return factor or 1

    def decoded_pixels(self, window: Window, out_shape: tuple[int, int] | None = None) -> int:
        """Pixels GDAL decodes per band to read `window` as `out_shape` (h, w; default the
        window's own size), counted from the sizes alone: the window at the overview level that
        serves the read (its blocks may add up to one block a side)."""
        width, height = int(window.width), int(window.height)
        if out_shape is None:
            return width * height
        decimation = min(width / max(out_shape[1], 1), height / max(out_shape[0], 1))
        factor = self.overview_factor(decimation) if decimation > 1 else 1
        return math.ceil(width / factor) * math.ceil(height / factor)

    def check_read(self, window: Window, out_shape: tuple[int, int] | None = None) -> None:
        """`PromptError` when reading `window` (as `out_shape`) would decode more than
        `max_pixels` pixels: what the read would cost, the limit and how to stay within it."""
        needed = self.decoded_pixels(window, out_shape)
        if self.max_pixels is None or needed <= self.max_pixels:
            return
        overviews = sorted(self.dataset.overviews(self.bands[0]))
        having = (
            f"its overviews ({', '.join(map(str, overviews))}x)" if overviews else "no overviews"
        )
        raise PromptError(
            f"the prompts span {int(window.width)} x {int(window.height)} pixels of {self.name}, "
            f"which has {having}: reading them means decoding {needed:,} pixels, over the limit "
            f"of {self.max_pixels:,}; put the prompts closer together, or add coarser overviews "
            "to the file (e.g. gdaladdo -r average FILE 2 4 8 16 32 64)"
        )

    # ---- reading -------------------------------------------------------------------------

    def valid(self, window: Window, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """(h, w) bool: True where the window (read as `out_shape`, default its own size) has
        data. A pixel is nodata when every chosen band is (GDAL's nodata value, alpha or
        internal mask), as GDAL's dataset mask has it."""
        shape = None if out_shape is None else (len(self.bands), *out_shape)
        with _read_errors(self.name):
            masks = self.dataset.read_masks(  # (bands, h, w) 0 or 255
                self.bands, window=window, out_shape=shape, resampling=Resampling.nearest
            )
        return masks.any(axis=0)

    def read(
        self, window: Window, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The window as SAM's input: ((h, w, 3) uint8 RGB, (h, w) bool valid), (h, w) the
        window's size or `out_shape` (a decimated read: each pixel the average of those it
        covers). Nodata pixels (and NaN / infinite values) are black and False in `valid`.
        `PromptError` beyond `max_pixels` (checked before reading), `DataError` when the file's
        pixels cannot be read."""
        self.check_read(window, out_shape)
        shape = None if out_shape is None else (len(self.bands), *out_shape)
        with _read_errors(self.name):
            data = self.dataset.read(  # (bands, h, w), the file's dtype
                self.bands, window=window, out_shape=shape, resampling=Resampling.average
            )
        valid = self.valid(window, out_shape)
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if self.ranges is _FROM_FIRST_READ:  # the whole raster was too large to sample
            self.ranges = _ranges(data, valid, self._stretch)
        if self.ranges is None:
            pixels = np.clip(data, 0, 255).astype(np.uint8) if data.dtype != np.uint8 else data
        else:
            pixels = np.empty(data.shape, dtype=np.uint8)
            for i, (low, high) in enumerate(self.ranges):
                band = (data[i].astype(np.float32) - low) * (255.0 / max(high - low, 1e-12))
                np.clip(band, 0, 255, out=band)
                pixels[i] = np.nan_to_num(band, nan=0.0)
        del data
        pixels[:, ~valid] = 0
        if len(self.bands) == 1:
            pixels = np.repeat(pixels, 3, axis=0)
        return np.ascontiguousarray(pixels.transpose(1, 2, 0)), valid  # (h, w, 3)

    def _stretch_ranges(self, stretch: str) -> Any:
        """Per chosen band (low, high) mapped to 0..255, None to keep the values, or
        `_FROM_FIRST_READ` when a decimated read of the whole raster would decode more than
        `max_pixels` (then the first window read gives them)."""
        uint8 = all(self.dataset.dtypes[b - 1] == "uint8" for b in self.bands)
        if stretch == "none" or (stretch == "auto" and uint8):
            return None
        whole = Window(0, 0, self.width, self.height)
        out_shape = decimated_shape(self.width, self.height, STATS_SIDE)
        needed = self.decoded_pixels(whole, out_shape)
        if self.max_pixels is not None and needed > self.max_pixels:
            return _FROM_FIRST_READ
        shape = (len(self.bands), *out_shape)
        with _read_errors(self.name):
            data = self.dataset.read(self.bands, out_shape=shape, resampling=Resampling.nearest)
            valid = self.dataset.read_masks(
                self.bands, out_shape=shape, resampling=Resampling.nearest
            ).any(axis=0)
        return _ranges(data, valid, stretch)

    # ---- prompts -------------------------------------------------------------------------

    def to_pixels(self, xy: np.ndarray, crs: Any = None) -> np.ndarray:
        """(N, 2) x/y in `crs` (default the raster's; lng/lat order for EPSG:4326) -> (N, 2)
        (col, row) pixel coordinates of this raster. Not checked against the raster's size."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if crs is not None:
            source, target = crs_text(crs), crs_text(self.crs)
            if source != target:
                x, y = transformer(source, target).transform(xy[:, 0], xy[:, 1])
                xy = np.column_stack([x, y])
        a, b, c, d, e, f = list(~self.transform)[:6]  # CRS -> pixel
        cols = a * xy[:, 0] + b * xy[:, 1] + c
        rows = d * xy[:, 0] + e * xy[:, 1] + f
        return np.column_stack([cols, rows])

    def bounds_in(self, crs: Any = None) -> tuple[float, float, float, float]:
        """The raster's (xmin, ymin, xmax, ymax) in `crs` (default its own), for messages."""
        left, bottom, right, top = self.dataset.bounds
        if crs is None:
            return left, bottom, right, top
        from rasterio.warp import transform_bounds

        return transform_bounds(self.crs, crs_text(crs), left, bottom, right, top)

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self.dataset.close()
        if self._memory_file is not None:
            self._memory_file.close()

    def __enter__(self) -> GeoRaster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_geotiff(
    path: Path | str,
    bands: Sequence[int] | None = None,
    stretch: str = "auto",
    max_pixels: int | None = None,
) -> GeoRaster:
    """Open a GeoTIFF (any raster GDAL reads) for SAM. `DataError` when it is missing,
    unreadable or has no CRS; `ConfigError` for a band that does not exist; max_pixels: see
    `GeoRaster`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"raster file not found: {path}")
    try:
        with warnings.catch_warnings():  # a raster without a CRS gets its own error below
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioIOError as e:
        raise DataError(f"{path}: not a raster GDAL can read ({e})") from None
    return GeoRaster(dataset, str(path), bands, stretch, max_pixels=max_pixels)


# The stretch statistics are taken from the first window read (see `GeoRaster._stretch_ranges`).
_FROM_FIRST_READ = "from the first window read"


def _ranges(data: np.ndarray, valid: np.ndarray, stretch: str) -> list[tuple[float, float]]:
    """Per band of `data` (bands, h, w), the (low, high) of `stretch` over its valid (h, w)
    finite pixels; (0, 1) for a band without any."""
    ranges = []
    for band in data:
        values = band[valid & np.isfinite(band)].astype(np.float64)
        if values.size == 0:
            ranges.append((0.0, 1.0))
            continue
        if stretch == "minmax":
            low, high = float(values.min()), float(values.max())
        else:
            low, high = (float(v) for v in np.percentile(values, PERCENTILES))
        ranges.append((low, high if high > low else low + 1.0))
    return ranges


@contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """GDAL's failures to read pixels of a file that opened (damaged or truncated tiles, a
    compression it cannot undo) as a `DataError` naming the file."""
    try:
        yield
    except RasterioError as e:
        raise DataError(
            f"{name}: the raster's pixels cannot be read ({e}); the file may be damaged or "
            "truncated"
        ) from None


def _check_bands(bands: Sequence[int] | None, count: int, name: str) -> tuple[int, ...]:
    if bands is None:
        if count == 2:
            raise ConfigError(
                f"{name} has 2 bands; choose the one to show (--bands 1) or three (--bands 1,2,2)"
            )
        return (1, 2, 3) if count >= 3 else (1,)
    bands = tuple(int(b) for b in bands)
    if len(bands) not in (1, 3):
        raise ConfigError(
            f"give 1 band (shown as grey) or 3 (red, green, blue), got {len(bands)}: "
            f"{','.join(map(str, bands))}"
        )
    for band in bands:
        if not 1 <= band <= count:
            raise ConfigError(
                f"band {band} does not exist: {name} has {count} band(s), numbered 1..{count}"
            )
    return bands
