"""Polygons with properties written to GeoJSON, GeoPackage or Shapefile (GDAL through pyogrio),
in batches, so that a long run never holds all its features, and atomically: the file appears
under its name complete or not at all.

    with FeatureWriter(Path("out.gpkg"), crs=raster.crs, fields={"score": "float"}) as out:
        out.add(polygon, {"score": 0.93})

GeoJSON is written in EPSG:4326 (lng/lat), as RFC 7946 asks and web maps expect; the other
formats keep the geometries' CRS unless `out_crs` says otherwise.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from segany.errors import ConfigError
from segany.formats.atomic import atomic_file
from segany.geo.geotiff import crs_text
from segany.geo.projection import WGS84, transformer

DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}
# Field kinds -> NumPy dtypes GDAL maps to Real / Integer64 fields.
FIELD_TYPES = {"float": np.float64, "int": np.int64}
# Features buffered before each append to the file.
BATCH = 1024
# The side files a Shapefile is made of, besides .shp.
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def output_driver(path: Path) -> str:
    """The GDAL driver for `path`'s suffix; `ConfigError` for one it cannot be."""
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ConfigError(
            f"cannot write {path}: the output must end in .geojson, .gpkg or .shp "
            "(GeoJSON, GeoPackage or Shapefile)"
        )
    return driver


def default_out_crs(path: Path, crs: Any) -> Any:
    """The CRS a file at `path` is written in when none is asked for: EPSG:4326 for GeoJSON,
    else the geometries' own `crs`."""
    return WGS84 if output_driver(path) == "GeoJSON" else crs


def import_pyogrio() -> Any:
    try:
        import pyogrio.raw
    except ModuleNotFoundError:
        raise ConfigError(
            "writing GeoJSON / GeoPackage / Shapefile needs pyogrio: pip install 'segany[geo]'"
        ) from None
    return pyogrio.raw


class FeatureWriter:
    """Polygon features to one file, in batches of BATCH.

    path: .geojson, .gpkg or .shp (replaced when it exists); crs: the CRS of the geometries
    given to `add`; out_crs: the file's CRS (default `default_out_crs`); fields: name -> "float"
    or "int", the properties every feature has (Shapefile names: at most 10 characters).
    """

    def __init__(self, path: Path, crs: Any, fields: dict[str, str], out_crs: Any = None) -> None:
        self.path = Path(path)
        self.driver = output_driver(self.path)
        self._ogr = import_pyogrio()
        self.fields = dict(fields)
        self.crs = crs_text(crs)
        self.out_crs = crs_text(default_out_crs(self.path, crs) if out_crs is None else out_crs)
        self._project = (
            None if self.out_crs == self.crs else transformer(self.crs, self.out_crs).transform
        )
        self._geometries: list[BaseGeometry] = []
        self._values: dict[str, list] = {name: [] for name in self.fields}
        self.count = 0
        self._written = False
        self._stack = ExitStack()
        self._target = self._open()

    def _open(self) -> Path:
        if self.driver != "ESRI Shapefile":
            return self._stack.enter_context(atomic_file(self.path))
        # A Shapefile is several files: they are made in a hidden sibling folder and moved
        # into place, .shp last, when the writer closes.
        folder = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        folder.mkdir(parents=True)
        self._stack.callback(shutil.rmtree, folder, ignore_errors=True)
        return folder / self.path.name

    def add(self, geometry: BaseGeometry, properties: dict[str, Any]) -> None:
        """One feature: a Polygon (or MultiPolygon) in `crs` and a value for every field."""
        self._geometries.append(geometry)
        for name, values in self._values.items():
            values.append(properties[name])
        self.count += 1
        if len(self._geometries) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._written and not self._geometries:
            return
        geometries = self._geometries
        if self._project is not None:
            project = self._project

            def reproject(coords: np.ndarray) -> np.ndarray:  # (N, 2) crs -> out_crs
                return np.column_stack(project(coords[:, 0], coords[:, 1]))

            geometries = [shapely.transform(g, reproject) for g in geometries]
        multi = any(g.geom_type == "MultiPolygon" for g in geometries)
        self._ogr.write(
            self._target,
            np.array(shapely.to_wkb(geometries), dtype=object) if geometries else np.array([]),
            [
                np.asarray(self._values[name], dtype=FIELD_TYPES[kind])
                for name, kind in self.fields.items()
            ],
            list(self.fields),
            layer=self.path.stem,  # not the temporary file's name
            driver=self.driver,
            geometry_type="Polygon",
            promote_to_multi=multi or None,
            crs=self.out_crs,
            append=self._written,
        )
        self._written = True
        self._geometries = []
        self._values = {name: [] for name in self.fields}

    def close(self) -> None:
        """Write what is left and put the file in place."""
        with self._stack:
            self._flush()
            if self.driver == "ESRI Shapefile":
                self._move_shapefile()

    def _move_shapefile(self) -> None:
        folder = self._target.parent
        parts = sorted(folder.iterdir(), key=lambda p: p.suffix.lower() == ".shp")
        for suffix in SHAPEFILE_PARTS:  # no stale side file of an earlier run is left behind
            stale = self.path.with_suffix(suffix)
            if not any(p.suffix.lower() == suffix for p in parts):
                stale.unlink(missing_ok=True)
        for part in parts:
            os.replace(part, self.path.with_name(part.name))

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if error is None:
            self.close()
        else:  # the temporary file goes; the file at `path` is left as it was
            self._stack.__exit__(kind, error, traceback)
