"""Automatic masks over a raster of any size, one window at a time.

    with open_geotiff("scene.tif") as raster:
        summary = run_tiled_amg(raster, model, Path("masks.gpkg"), TiledOptions(tile_size=1024))

1. Windows of `tile_size` pixels overlapping by `overlap` cover the raster (`seams.tile_grid`).
   Each is read on its own (a windowed read: the raster is never read whole); one whose pixels
   are all nodata is skipped without running the model.
2. The automatic mask generator runs on the window (COCO RLE output); each mask loses its
   nodata pixels (a mask that was mostly nodata is dropped) and becomes polygons in the
   raster's pixel frame. They are written to the window's part file, atomically, in the folder
   OUT.parts/: a killed run resumes with the windows that have none.
3. When every window is done the parts are read back in row-major order, the pieces of an
   object that crosses window seams (or lies in an overlap, seen twice) are joined
   (`seams.merge_pieces`) and each object is written to OUT as it completes, in the raster's
   CRS (EPSG:4326 for GeoJSON), its outline first snapped to the raster's colour edges when
   the model's masks are edge-refined (`outline_refinement`; windows are joined on the plain
   masks). Then OUT.parts/ is removed.

Memory: one window's pixels and masks, a few rows of windows' polygons, and GDAL's block cache,
capped at GDAL_CACHE_MB (GDAL's default is 5% of the machine's RAM) - whatever the raster's size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import shapely
import shapely.affinity
from affine import Affine
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from segany.errors import ConfigError
from segany.geo.feature_files import FeatureWriter, output_driver
from segany.geo.geotiff import GeoRaster, crs_text
from segany.geo.outline_refinement import refine_outline
from segany.geo.parts import PARTS_VERSION, PartStore, parts_folder
from segany.geo.seams import Merged, Piece, Tile, merge_pieces, tile_grid
from segany.geo.vector import geodesic_area, shapes_in_crs, to_wgs84
from segany.masks.config import AmgConfig
from segany.masks.generator import AutomaticMaskGenerator
from segany.masks.rle import coco_rle_to_mask
from segany.modeling.sam import Sam

# GDAL's block cache while reading windows, MB.
GDAL_CACHE_MB = 64
# The fields of every written feature (Shapefile names are at most 10 characters).
FIELDS = {"score": "float", "stability": "float", "area_m2": "float", "tiles": "int"}


@dataclass(frozen=True)
class TiledOptions:
    """tile_size / overlap: window side and overlap, pixels; seam_iou: IoU in a shared strip
    from which two windows' polygons are one object; min_valid: the fraction of a mask that
    must be on data (not nodata) to keep it; min_area: polygons smaller than this many pixels
    are dropped; out_crs: the output's CRS (default: the raster's, EPSG:4326 for GeoJSON)."""

    tile_size: int = 1024
    overlap: int = 128
    seam_iou: float = 0.5
    min_valid: float = 0.5
    min_area: float = 16.0
    out_crs: str | None = None

    def validate(self) -> None:
        if self.tile_size < 32:
            raise ConfigError(f"tile size must be at least 32 pixels, got {self.tile_size}")
        if not 0 <= self.overlap <= self.tile_size // 2:
            raise ConfigError(
                f"overlap must be in 0..{self.tile_size // 2} (half the tile size), got "
                f"{self.overlap}"
            )
        if not 0.0 < self.seam_iou <= 1.0:
            raise ConfigError(f"seam IoU must be in (0, 1], got {self.seam_iou}")
        if not 0.0 <= self.min_valid <= 1.0:
            raise ConfigError(f"min_valid must be in [0, 1], got {self.min_valid}")
        if self.min_area < 0:
            raise ConfigError(f"min area must be >= 0, got {self.min_area}")


@dataclass(frozen=True)
class TiledSummary:
    """windows: all of them; processed: run through the model in this call; skipped: all
    nodata, in this call; resumed: done by an earlier, interrupted call; polygons written."""

    windows: int
    processed: int
    skipped: int
    resumed: int
    polygons: int
    output: Path

    def line(self) -> str:
        resumed = f", {self.resumed} done before (resumed)" if self.resumed else ""
        return (
            f"{self.windows} windows: {self.processed} segmented, {self.skipped} skipped as "
            f"nodata{resumed}; {self.polygons} polygons"
        )


def run_tiled_amg(
    raster: GeoRaster,
    model: Sam,
    out: Path,
    options: TiledOptions = TiledOptions(),
    amg: AmgConfig | None = None,
    model_id: str | None = None,
    progress: bool = True,
    on_tile: Callable[[Tile], None] | None = None,
) -> TiledSummary:
    """Automatic masks of the whole raster as polygons in `out` (.gpkg, .shp or .geojson).

    amg: the generator's options (default: the model's, `AmgConfig.for_model`); output_mode
    is always coco_rle. model_id: names the weights in the resume check (default the model's
    name). on_tile(tile) is called after each window's part is saved (progress hooks, tests).
    An existing OUT.parts/ from a run with the same raster and options is resumed; one from
    other options is a `ConfigError`.
    """
    options.validate()
    output_driver(out)  # an unwritable suffix fails before any window is segmented
    amg = dataclasses.replace(amg or AmgConfig.for_model(model.spec), output_mode="coco_rle")
    generator = AutomaticMaskGenerator(model, amg)
    # Windows are joined where their masks agree inside the shared strip; edge refinement,
    # filtering each window up to its border, lets two windows' pieces of one object disagree
    # there (measured: a disc across a corner stayed in two pieces), so windows use the plain
    # masks and each joined object is refined once written (`outline_refinement`).
    refinement = generator.predictor.edge_refinement
    generator.predictor.edge_refinement = None
    tiles = tile_grid(raster.width, raster.height, options.tile_size, options.overlap)
    refine = None
    if refinement is not None:
        window_side = max(tiles[0].width, tiles[0].height)  # each window's long side
        refine = functools.partial(
            refine_outline,
            raster,
            radius=refinement.radius_for(window_side, model.image_size),
            eps=refinement.eps,
            subsample=refinement.subsample,
            min_area=max(options.min_area, 1.0),
        )
    parts = PartStore(parts_folder(out), _fingerprint(raster, options, amg, model_id or model))
    done = parts.done()
    processed = skipped = 0
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        todo = [t for t in tiles if t.index not in done]
        bar = tqdm(
            total=len(tiles), initial=len(tiles) - len(todo), unit="window", disable=not progress
        )
        with bar:
            for tile in todo:
                pieces = _tile_pieces(raster, generator, tile, options)
                parts.save(tile, pieces)
                if pieces is None:
                    skipped += 1
                else:
                    processed += 1
                bar.update()
                bar.set_postfix(skipped=skipped, refresh=False)
                if on_tile is not None:
                    on_tile(tile)
    count = _write(raster, tiles, parts, out, options, refine)
    parts.remove()
    return TiledSummary(len(tiles), processed, skipped, len(tiles) - len(todo), count, out)


def _tile_pieces(
    raster: GeoRaster, generator: AutomaticMaskGenerator, tile: Tile, options: TiledOptions
) -> list[Piece] | None:
    """The window's polygons in the raster's pixel frame, or None when it is all nodata."""
    window = Window(tile.col_off, tile.row_off, tile.width, tile.height)
    if not raster.valid(window).any():
        return None
    rgb, valid = raster.read(window)  # (h, w, 3) uint8, (h, w) bool
    records = generator.generate(rgb)
    del rgb
    to_raster_pixels = Affine.translation(tile.col_off, tile.row_off)
    pieces = []
    for record in records:
        mask = coco_rle_to_mask(record["segmentation"]) & valid  # (h, w) bool
        kept = int(mask.sum())
        if kept == 0 or kept < options.min_valid * record["area"]:
            continue  # mostly nodata: SAM outlined the empty area, not an object
        for polygon in shapes_in_crs(mask, to_raster_pixels):
            if polygon.area >= max(options.min_area, 1.0):  # pixels
                pieces.append(
                    Piece(polygon, float(record["predicted_iou"]), float(record["stability_score"]))
                )
    return pieces


def _write(
    raster: GeoRaster,
    tiles: list[Tile],
    parts: PartStore,
    out: Path,
    options: TiledOptions,
    refine: Callable[[BaseGeometry], BaseGeometry] | None = None,
) -> int:
    """Merge the parts across seams and write the objects to `out`, each outline refined by
    `refine` (pixel frame in and out) when given; their count."""
    t = raster.transform
    to_crs = [t.a, t.b, t.d, t.e, t.c, t.f]  # shapely's affine_transform order
    fields = FIELDS
    with FeatureWriter(out, raster.crs, fields, options.out_crs) as writer:
        for merged in merge_pieces(tiles, parts.load, options.seam_iou):
            if refine is not None:
                merged.geometry = refine(merged.geometry)
            for polygon in _polygons(merged):
                geometry = shapely.affinity.affine_transform(polygon, to_crs)
                writer.add(geometry, _properties(merged, geometry, raster.crs))
        return writer.count


def _polygons(merged: Merged) -> list[Any]:
    geometry = merged.geometry
    if geometry.geom_type == "Polygon":
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if g.geom_type == "Polygon"]


def _properties(merged: Merged, geometry: Any, crs: Any) -> dict[str, Any]:
    return {
        "score": merged.score,
        "stability": merged.stability,
        "area_m2": geodesic_area(to_wgs84([geometry], crs)[0]),
        "tiles": merged.tiles,
    }


def _fingerprint(
    raster: GeoRaster, options: TiledOptions, amg: AmgConfig, model: Any
) -> dict[str, Any]:
    """What the windows' results depend on; a resumed run must match it."""
    return {
        "version": PARTS_VERSION,
        "raster": {
            "width": raster.width,
            "height": raster.height,
            "crs": crs_text(raster.crs),
            "transform": list(raster.transform)[:6],
            "bands": list(raster.bands),
            "stretch": raster.ranges,
        },
        "model": model if isinstance(model, str) else model.spec.name,
        "tile_size": options.tile_size,
        "overlap": options.overlap,
        "min_valid": options.min_valid,
        "min_area": options.min_area,
        "amg": dataclasses.asdict(amg),
    }
