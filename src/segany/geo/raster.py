"""A lat/lng extent at a zoom as one RGB image: the pixel grid that covers it (with its affine
transform in EPSG:3857), the tiles under it, and the tiles stitched and cropped to it.

    extent = Extent(west=7.0, south=45.0, east=7.01, north=45.01)
    grid = extent_grid(extent, zoom=16)
    image = extent_image(grid, source, fetcher)   # (grid.height, grid.width, 3) uint8
    grid.transform                                 # pixel (col, row) -> EPSG:3857 metres

The grid is whole pixels of the zoom's world grid: the smallest pixel-aligned rectangle holding
the extent, so the image is never resampled and the transform is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from segany.geo.errors import ExtentError
from segany.geo.projection import (
    HALF_WORLD,
    TILE_SIZE,
    check_lnglat,
    check_zoom,
    lnglat_to_pixel,
    world_pixels,
)
from segany.geo.tiles import TileFetcher, TileId, TileSource

# World-pixel coordinates within this of a whole pixel are taken as on it (float noise must not
# add a row of pixels, and a tile, to an extent that ends on a tile edge).
_SNAP = 1e-6


@dataclass(frozen=True)
class Extent:
    """A lat/lng rectangle in degrees (EPSG:4326), not crossing the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        check_lnglat(self.west, self.south)
        check_lnglat(self.east, self.north)
        if not (self.west < self.east and self.south < self.north):
            raise ExtentError(
                f"the extent is inverted or empty: south-west (lat {self.south}, lng "
                f"{self.west}) must lie south and west of north-east (lat {self.north}, lng "
                f"{self.east})"
            )

    def contains(self, lng: float, lat: float) -> bool:
        return self.west <= lng <= self.east and self.south <= lat <= self.north


@dataclass(frozen=True)
class ExtentGrid:
    """The pixels of an extent at a zoom: columns left..left+width, rows top..top+height of
    the zoom's world pixel grid (x east, y south, 256-px tiles)."""

    zoom: int
    left: int
    top: int
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        """Image pixel (col, row) -> EPSG:3857 (x, y) metres, for rasterio and GDAL."""
        size = 2 * HALF_WORLD / world_pixels(self.zoom)  # metres per pixel
        return Affine(
            size, 0.0, self.left * size - HALF_WORLD, 0.0, -size, HALF_WORLD - self.top * size
        )

    @property
    def tile_range(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the first and last tile column and row under the grid, inclusive."""
        x0, x1 = self.left // TILE_SIZE, (self.left + self.width - 1) // TILE_SIZE
        y0, y1 = self.top // TILE_SIZE, (self.top + self.height - 1) // TILE_SIZE
        return x0, y0, x1, y1

    @property
    def tile_count(self) -> int:
        """How many tiles `tiles` holds, by arithmetic: check it before listing them (the whole
        world at zoom 19 is ~7 * 10^10 tiles, far too many tuples to build)."""
        x0, y0, x1, y1 = self.tile_range
        return (x1 - x0 + 1) * (y1 - y0 + 1)

    @property
    def tiles(self) -> list[TileId]:
        """The (z, x, y) tiles under the grid, row by row. As long as `tile_count`: callers
        check that against their limit first (`TileFetcher.check_count`)."""
        x0, y0, x1, y1 = self.tile_range
        return [(self.zoom, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]

    def to_image(self, lng, lat) -> tuple[np.ndarray, np.ndarray]:
        """(lng, lat) degrees (scalars or (N,) arrays) -> continuous image pixel (x, y), (0, 0)
        at the top-left corner of the top-left pixel."""
        px, py = lnglat_to_pixel(lng, lat, self.zoom)
        return np.asarray(px) - self.left, np.asarray(py) - self.top


def extent_grid(extent: Extent, zoom: float) -> ExtentGrid:
    """The smallest whole-pixel grid at `zoom` (a whole number) that holds `extent`."""
    zoom = check_zoom(zoom)
    (x0, x1), (y0, y1) = lnglat_to_pixel(
        np.array([extent.west, extent.east]), np.array([extent.north, extent.south]), zoom
    )
    left, top = math.floor(x0 + _SNAP), math.floor(y0 + _SNAP)
    right, bottom = math.ceil(x1 - _SNAP), math.ceil(y1 - _SNAP)
    return ExtentGrid(zoom, left, top, max(right - left, 1), max(bottom - top, 1))


def stitch(grid: ExtentGrid, tiles: dict[TileId, np.ndarray]) -> np.ndarray:
    """The grid's (height, width, 3) uint8 image cut from its tiles ((256, 256, 3) each)."""
    keys = grid.tiles
    tx0, ty0 = keys[0][1], keys[0][2]
    tx1, ty1 = keys[-1][1], keys[-1][2]
    mosaic = np.zeros(((ty1 - ty0 + 1) * TILE_SIZE, (tx1 - tx0 + 1) * TILE_SIZE, 3), np.uint8)
    for z, x, y in keys:
        row, col = (y - ty0) * TILE_SIZE, (x - tx0) * TILE_SIZE
        mosaic[row : row + TILE_SIZE, col : col + TILE_SIZE] = tiles[(z, x, y)]
    top, left = grid.top - ty0 * TILE_SIZE, grid.left - tx0 * TILE_SIZE
    return np.ascontiguousarray(mosaic[top : top + grid.height, left : left + grid.width])


def extent_image(grid: ExtentGrid, source: TileSource, fetcher: TileFetcher) -> np.ndarray:
    """The grid's RGB image from `source`: (grid.height, grid.width, 3) uint8. Raises
    `ExtentError` beyond the fetcher's tile limit (counted before any tile is listed),
    `TileError` when a tile fails."""
    source.check_zoom(grid.zoom)
    fetcher.check_count(grid.tile_count)
    return stitch(grid, fetcher.fetch(source, grid.tiles))
