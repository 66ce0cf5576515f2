"""`segany geo segment` and `segany geo amg`: SAM on GeoTIFFs, polygons out.

    segany geo segment IN.tif --point X,Y[,LABEL] ... [--box X0,Y0,X1,Y1] [--crs CRS] --out OUT
    segany geo amg IN.tif --out OUT.gpkg [--tile-size 1024] [--overlap 128]

Outputs are GeoJSON (EPSG:4326), GeoPackage or Shapefile (the raster's CRS), chosen by the
suffix. The geo extra (rasterio, shapely, pyproj, pyogrio) is imported only when a command
runs, so `segany` works without it. Checks that need no model run before one is built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segany.cli.amg import add_amg_arguments, amg_config
from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, load_model, resolve_model
from segany.cli.parsing import BOX_FORM, POINT_FORM, parse_box, parse_point
from segany.devices import resolve_device
from segany.errors import CheckpointError

# Exit status of `geo segment` when the model found nothing at the prompts.
EXIT_NOTHING_FOUND = 1
# What the geo extra installs; a missing one is a user error with the install line.
_GEO_MODULES = ("affine", "pyogrio", "pyproj", "rasterio", "shapely")
OUTPUTS = "OUT.geojson (EPSG:4326), OUT.gpkg or OUT.shp (the raster's CRS unless --out-crs)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    geo = subparsers.add_parser(
        "geo",
        help="GeoTIFFs: segment from map prompts, automatic masks over large rasters",
        description="SAM on georeferenced rasters (needs segany[geo]). See `segany geo segment "
        "--help` and `segany geo amg --help`.",
    )
    commands = geo.add_subparsers(dest="geo_command", metavar="COMMAND")
    _add_segment(commands)
    _add_amg(commands)

    def usage(args: argparse.Namespace) -> int:
        geo.print_help(sys.stderr)
        return 2

    geo.set_defaults(run=usage)


def _add_raster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "raster", type=Path, metavar="IN.tif", help="GeoTIFF (any raster GDAL reads)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help=OUTPUTS)
    parser.add_argument(
        "--bands",
        metavar="R,G,B",
        help="1-based bands shown to the model as red,green,blue (e.g. 4,3,2 for a false-colour "
        "composite), or one band shown as grey; default the first three, or the only one",
    )
    parser.add_argument(
        "--stretch",
        choices=("auto", "percent", "minmax", "none"),
        default="auto",
        help="how the bands become 0..255: percent (2nd..98th percentile of each band), "
        "minmax, none (clipped); auto: uint8 as it is, other types percent (default auto)",
    )
    parser.add_argument(
        "--out-crs",
        metavar="CRS",
        help="CRS of the output (e.g. EPSG:4326); default the raster's (EPSG:4326 for GeoJSON)",
    )


def _add_segment(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "segment",
        help="segment one object from point / box prompts in map coordinates",
        description="Segment the object at the prompts and write its polygons (holes kept, no "
        "background, nodata never included). Prompts are coordinates in --crs (default: the "
        "raster's CRS; for EPSG:4326, X is the longitude and Y the latitude). The model sees "
        "the whole raster when it is at most --context pixels a side, else a --context window "
        "around the prompts. Exit status 1 when no object was found.",
    )
    _add_raster_arguments(parser)
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help=f"a point prompt, repeatable: {POINT_FORM}",
    )
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help=f"a box prompt: {BOX_FORM}")
    parser.add_argument(
        "--crs", metavar="CRS", help="CRS of the prompts (e.g. EPSG:4326); default the raster's"
    )
    parser.add_argument(
        "--context",
        type=int,
        default=1024,
        metavar="PX",
        help="largest window (pixels a side) read around the prompts (default 1024)",
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run_segment)


def _add_amg(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "amg",
        help="automatic masks over a raster of any size, window by window",
        description="Segment everything in the raster, one window at a time (memory does not "
        "grow with the raster), and write the objects as polygons. Windows that are all nodata "
        "are skipped; objects crossing window seams are joined into one polygon. Each "
        "finished window is saved in OUT.parts/, so a killed run, started again with the same "
        "options, resumes where it stopped; OUT.parts/ is removed at the end.",
    )
    _add_raster_arguments(parser)
    tiling = parser.add_argument_group("windows")
    tiling.add_argument(
        "--tile-size", type=int, default=1024, metavar="PX", help="window side (default 1024)"
    )
    tiling.add_argument(
        "--overlap",
        type=int,
        default=128,
        metavar="PX",
        help="pixels neighbouring windows share; objects up to this size are seen whole in "
        "one of them (default 128)",
    )
    tiling.add_argument(
        "--seam-iou",
        type=float,
        default=0.5,
        metavar="X",
        help="IoU in the shared strip from which polygons of two windows are one object "
        "(default 0.5)",
    )
    tiling.add_argument(
        "--min-area",
        type=float,
        default=16.0,
        metavar="PX",
        help="drop polygons smaller than this many pixels (SAM's speckles) (default 16)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT when it exists (finished run)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arguments(parser)
    add_amg_arguments(
        parser, "mask generation, per window (defaults: the model's; see `segany amg --help`)"
    )
    parser.set_defaults(run=run_amg)


def _import_geo() -> Any:
    """segany.geo's modules, or a `UsageError` with the install line when the extra is missing."""
    try:
        from segany.geo import feature_files, geotiff, segment, tiled_amg
    except ModuleNotFoundError as e:
        if e.name not in _GEO_MODULES:
            raise
        raise UsageError(
            f"segany geo needs {e.name}, which is not installed: pip install 'segany[geo]'"
        ) from None
    return feature_files, geotiff, segment, tiled_amg


def _open_raster(args: argparse.Namespace, geotiff: Any) -> Any:
    bands = None if args.bands is None else geotiff.parse_bands(args.bands)
    return geotiff.open_geotiff(args.raster, bands, args.stretch)


def _checked_model(args: argparse.Namespace) -> tuple[Any, Path | None]:
    spec, checkpoint = resolve_model(args)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"checkpoint file not found: {checkpoint}")
    return spec, checkpoint


def run_segment(args: argparse.Namespace) -> int:
    import numpy as np

    feature_files, geotiff, segment, _ = _import_geo()
    from segany.geo.vector import geodesic_area, to_wgs84
    from segany.predictor import SamPredictor

    if not args.point and args.box is None:
        raise UsageError(f"give at least one --point {POINT_FORM} or a --box {BOX_FORM}")
    if args.context < 64:
        raise UsageError(f"--context must be at least 64 pixels, got {args.context}")
    feature_files.output_driver(args.out)
    points = [parse_point(p) for p in args.point]
    prompts = segment.GeoPrompts(
        points=np.array([(x, y) for x, y, _ in points]) if points else None,
        labels=np.array([label for _, _, label in points]) if points else None,
        box=None if args.box is None else np.array(parse_box(args.box)),
        crs=args.crs,
    )
    spec, checkpoint = _checked_model(args)
    with _open_raster(args, geotiff) as raster:
        segment.prompts_to_pixels(raster, prompts)  # prompts off the raster fail before loading
        model = load_model(spec, checkpoint, resolve_device(args.device), args.edge_refinement)
        found = segment.segment_geotiff(raster, SamPredictor(model), prompts, args.context)
        polygons = found.polygons()
        fields = {"score": "float", "area_m2": "float"}
        with feature_files.FeatureWriter(args.out, raster.crs, fields, args.out_crs) as out:
            for polygon in polygons:
                area = geodesic_area(to_wgs84([polygon], raster.crs)[0])
                out.add(polygon, {"score": found.score, "area_m2": area})
        whole = (raster.width, raster.height) == (found.window.width, found.window.height)
    if not polygons:
        print(f"geo segment: no object found at the prompts; {args.out} has no features")
        return EXIT_NOTHING_FOUND
    print(
        f"geo segment: {len(polygons)} polygon(s), score {found.score:.3f}, written to {args.out}"
    )
    if found.touches_window_edge and not whole:
        print(
            f"note: the mask reaches the edge of the {found.window.width}x{found.window.height} "
            "px window read around the prompts; a larger --context may show the whole object",
            file=sys.stderr,
        )
    return 0


def run_amg(args: argparse.Namespace) -> int:
    feature_files, geotiff, _, tiled_amg = _import_geo()
    feature_files.output_driver(args.out)
    options = tiled_amg.TiledOptions(
        tile_size=args.tile_size,
        overlap=args.overlap,
        seam_iou=args.seam_iou,
        min_area=args.min_area,
        out_crs=args.out_crs,
    )
    options.validate()
    parts = tiled_amg.parts_folder(args.out)
    if args.out.exists() and not parts.exists() and not args.overwrite:
        raise UsageError(f"{args.out} exists; pass --overwrite to replace it")
    spec, checkpoint = _checked_model(args)
    amg = amg_config(args, spec)
    with _open_raster(args, geotiff) as raster:
        model = load_model(spec, checkpoint, resolve_device(args.device), args.edge_refinement)
        model_id = f"{spec.name}:{checkpoint.resolve() if checkpoint else 'random-seed-0'}"
        summary = tiled_amg.run_tiled_amg(
            raster, model, args.out, options, amg, model_id=model_id, progress=not args.quiet
        )
    print(f"geo amg: {summary.line()}; written to {args.out}")
    return 0
