"""Masks to map polygons: (H, W) bool masks -> shapely polygons in the raster's CRS (holes kept,
no background polygon) -> GeoJSON features in EPSG:4326 with their geodesic area in m².

    features = mask_to_features(mask, transform, "EPSG:3857", {"score": 0.93, "prompt_ids": [1]})
    collection = feature_collection(features)   # a GeoJSON FeatureCollection, lng/lat order

`transform` is the raster's affine transform (pixel column/row -> CRS x/y, as rasterio and
GDAL use it: pixel (0, 0) is the top-left corner of the top-left pixel). Used by the SamGIS
service and by the GeoTIFF tools, so these functions keep their signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyproj
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from segany.errors import ImageError
from segany.geo.projection import WGS84, transformer

_GEOD = pyproj.Geod(ellps="WGS84")


def shapes_in_crs(
    mask: np.ndarray, transform: Affine, simplify: float = 0.0, connectivity: int = 4
) -> list[BaseGeometry]:
    """The mask's connected regions as polygons in the CRS of `transform`.

    mask: (H, W) bool (or 0/1) array, True where the object is.
    transform: pixel -> CRS affine transform of the mask's grid.
    simplify: Douglas-Peucker tolerance in CRS units (metres for EPSG:3857); 0 keeps every
        pixel edge. Topology is preserved, so holes never cross their exterior.
    connectivity: 4 or 8, which pixel neighbours make one region (rasterio's rule).
    Returns one Polygon per region, holes as interior rings. Only True pixels are traced
    (`shapes(..., mask=mask)`), so the background never becomes a polygon; an empty mask gives [].
    """
    mask = _as_mask(mask)
    if not mask.any():
        return []
    values = mask.astype(np.uint8)
    polygons = []
    for geometry, _ in rasterio.features.shapes(
        values, mask=mask, connectivity=connectivity, transform=transform
    ):
        polygon = shape(geometry)
        if simplify > 0:
            polygon = polygon.simplify(simplify, preserve_topology=True)
        if not polygon.is_empty:
            polygons.append(polygon)
    return polygons


def to_wgs84(geometries: Iterable[BaseGeometry], crs: Any) -> list[BaseGeometry]:
    """`geometries` from `crs` (anything pyproj accepts: "EPSG:3857", a WKT string, a rasterio
    or pyproj CRS) to EPSG:4326, coordinates in (lng, lat) order as GeoJSON has them."""
    to_lnglat = transformer(_crs_text(crs), WGS84)

    def project(coords: np.ndarray) -> np.ndarray:  # (N, 2) x/y in `crs` -> (N, 2) lng/lat
        lng, lat = to_lnglat.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lng, lat])

    return [shapely.transform(g, project) for g in geometries]


def geodesic_area(geometry: BaseGeometry) -> float:
    """Area in m² on the WGS84 ellipsoid of a (Multi)Polygon in EPSG:4326 (lng, lat), holes
    subtracted."""
    if geometry.is_empty:
        return 0.0
    if geometry.geom_type == "MultiPolygon":
        return sum(geodesic_area(part) for part in geometry.geoms)
    # Counter-clockwise exterior, clockwise holes: pyproj then subtracts the holes' area.
    area, _ = _GEOD.geometry_area_perimeter(orient(geometry, sign=1.0))
    return abs(float(area))


def mask_to_features(
    mask: np.ndarray,
    transform: Affine,
    crs: Any,
    properties: Mapping[str, Any] | None = None,
    simplify: float = 0.0,
) -> list[dict[str, Any]]:
    """GeoJSON features (EPSG:4326, lng/lat) of the mask's regions, one Polygon feature each.

    mask: (H, W) bool; transform: its pixel -> `crs` affine transform; simplify: tolerance in
    `crs` units (see `shapes_in_crs`). Each feature's properties are a copy of `properties`
    plus "area_m2", the region's geodesic area. No feature for the background; [] for an empty
    mask.
    """
    polygons = to_wgs84(shapes_in_crs(mask, transform, simplify), crs)
    features = []
    for polygon in polygons:
        props = dict(properties or {})
        props["area_m2"] = geodesic_area(polygon)
        features.append(
            {"type": "Feature", "geometry": _plain(mapping(polygon)), "properties": props}
        )
    return features


def feature_collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (RFC 7946: EPSG:4326, lng/lat) of `features`."""
    return {"type": "FeatureCollection", "features": list(features)}


def _as_mask(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ImageError(f"a mask must be (H, W), got shape {array.shape}")
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise ImageError("a mask must be bool or hold only 0 and 1")
        array = array.astype(bool)
    return array


def _crs_text(crs: Any) -> str:
    # A hashable spelling for the transformer cache; rasterio's CRS offers WKT, pyproj's too.
    if isinstance(crs, str):
        return crs
    return pyproj.CRS.from_user_input(crs).to_wkt()


def _plain(geometry: Any) -> Any:
    # shapely's mapping() nests tuples; JSON writers and equality tests want lists.
    if isinstance(geometry, dict):
        return {key: _plain(value) for key, value in geometry.items()}
    if isinstance(geometry, (list, tuple)):
        return [_plain(value) for value in geometry]
    return geometry
