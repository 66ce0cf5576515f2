"""Coordinates of web maps: lat/lng (EPSG:4326) <-> Web Mercator metres (EPSG:3857) <-> world
pixels at a zoom level.

World pixels follow the XYZ tile scheme: at zoom z the world is `256 * 2**z` pixels square,
(0, 0) at the top-left corner (lng -180, lat +85.0511), x east, y south; tile (tx, ty) covers
world pixels [256 tx, 256 (tx + 1)) x [256 ty, 256 (ty + 1)). The lat/lng <-> metres step is
pyproj's; metres <-> world pixels is an exact affine map.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pyproj

from segany.geo.errors import ExtentError

WGS84 = "EPSG:4326"
WEB_MERCATOR = "EPSG:3857"
TILE_SIZE = 256
# Half the side of the Web Mercator square, metres: pi * 6378137.
HALF_WORLD = math.pi * 6378137.0
# The latitude where the Web Mercator square ends: atan(sinh(pi)).
MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))
MAX_ZOOM = 24

_local = threading.local()


def transformer(source: str, target: str) -> pyproj.Transformer:
    """A pyproj transformer from `source` to `target` CRS (x/lng first, `always_xy`), one per
    thread: pyproj transformers must not be shared between threads."""
    cache = _local.__dict__.setdefault("transformers", {})
    key = (source, target)
    if key not in cache:
        cache[key] = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return cache[key]


def check_lnglat(lng: float, lat: float) -> None:
    """`ExtentError` unless (lng, lat) lies on the Web Mercator map."""
    if not (math.isfinite(lng) and -180.0 <= lng <= 180.0):
        raise ExtentError(f"longitude {lng} is outside -180..180 degrees")
    if not (math.isfinite(lat) and -MAX_LAT <= lat <= MAX_LAT):
        raise ExtentError(
            f"latitude {lat} is outside the web map's -{MAX_LAT:.4f}..{MAX_LAT:.4f} degrees"
        )


def check_zoom(zoom: float) -> int:
    """The zoom level as an int; `ExtentError` unless it is a whole number in 0..MAX_ZOOM."""
    if not (math.isfinite(zoom) and float(zoom).is_integer() and 0 <= zoom <= MAX_ZOOM):
        raise ExtentError(f"zoom must be a whole number in 0..{MAX_ZOOM}, got {zoom}")
    return int(zoom)


def lnglat_to_mercator(lng: np.ndarray | float, lat: np.ndarray | float) -> tuple:
    """(lng, lat) degrees (scalars or (N,) arrays) -> (x, y) EPSG:3857 metres."""
    return transformer(WGS84, WEB_MERCATOR).transform(lng, lat)


def mercator_to_lnglat(x: np.ndarray | float, y: np.ndarray | float) -> tuple:
    """(x, y) EPSG:3857 metres -> (lng, lat) degrees."""
    return transformer(WEB_MERCATOR, WGS84).transform(x, y)


def world_pixels(zoom: int, tile_size: int = TILE_SIZE) -> int:
    """Side of the world square at `zoom`, in pixels."""
    return tile_size * 2**zoom


def mercator_to_pixel(x, y, zoom: int, tile_size: int = TILE_SIZE) -> tuple:
    """EPSG:3857 metres -> world pixels (x east, y south from the top-left corner) at `zoom`."""
    scale = world_pixels(zoom, tile_size) / (2 * HALF_WORLD)
    return (np.asarray(x) + HALF_WORLD) * scale, (HALF_WORLD - np.asarray(y)) * scale


def pixel_to_mercator(px, py, zoom: int, tile_size: int = TILE_SIZE) -> tuple:
    """World pixels at `zoom` -> EPSG:3857 metres."""
    size = 2 * HALF_WORLD / world_pixels(zoom, tile_size)  # metres per pixel
    return np.asarray(px) * size - HALF_WORLD, HALF_WORLD - np.asarray(py) * size


def lnglat_to_pixel(lng, lat, zoom: int, tile_size: int = TILE_SIZE) -> tuple:
    """(lng, lat) degrees -> world pixels at `zoom`."""
    return mercator_to_pixel(*lnglat_to_mercator(lng, lat), zoom, tile_size)


def pixel_to_lnglat(px, py, zoom: int, tile_size: int = TILE_SIZE) -> tuple:
    """World pixels at `zoom` -> (lng, lat) degrees."""
    return mercator_to_lnglat(*pixel_to_mercator(px, py, zoom, tile_size))
