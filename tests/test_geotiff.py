"""GeoTIFF input (`segany geo segment`, `POST /api/geo/segment`) and automatic masks over large
rasters (`segany geo amg`): small GeoTIFFs written here with rasterio, segmented by the built-in
default model (it outlines flat-coloured shapes); window seams, nodata, resuming, and the memory
of a 20,000 x 20,000 px run measured in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyogrio  # noqa: E402  (segany[geo], in segany[dev]: missing, collection fails)
import pytest
import rasterio  # noqa: E402
import shapely  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from segany.cli.main import main  # noqa: E402
from segany.errors import ConfigError, DataError  # noqa: E402
from segany.geo.geotiff import open_geotiff  # noqa: E402
from segany.geo.projection import transformer  # noqa: E402
from segany.geo.seams import Piece, merge_pieces, tile_grid  # noqa: E402
from segany.geo.tiled_amg import TiledOptions, parts_folder, run_tiled_amg  # noqa: E402
from segany.geo.windows import pixel_window  # noqa: E402
from segany.masks.config import AmgConfig  # noqa: E402
from server_helpers import LOCAL_URL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UTM = "EPSG:32633"
WGS84 = "EPSG:4326"
UTM_TRANSFORM = from_origin(500_000, 5_000_000, 10, 10)  # 10 m pixels
WGS_TRANSFORM = from_origin(15.0, 45.2, 1e-4, 1e-4)  # ~10 m pixels
GREY, RED, BLUE, GREEN, YELLOW = (
    (190,) * 3,
    (200, 40, 40),
    (40, 40, 200),
    (40, 160, 40),
    (220, 200, 20),
)
# The red rectangle of the small scenes: rows 60..140, columns 80..180 (pixel corners).
RECT = (60, 140, 80, 180)
INSIDE = (130.5, 100.5)  # (col, row) of a pixel centre inside it


# ---- writing GeoTIFFs ---------------------------------------------------------------------


def write_tif(path: Path, data: np.ndarray, crs=UTM, transform=UTM_TRANSFORM, **profile) -> Path:
    """data: (bands, H, W). crs None: a raster without a CRS (and without a transform)."""
    bands, height, width = data.shape
    options = dict(driver="GTiff", width=width, height=height, count=bands, dtype=data.dtype)
    if crs is not None:
        options.update(crs=crs, transform=transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **options, **profile) as out:
            out.write(data)
    return path


def paint(height: int, width: int, shapes: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    """(3, H, W) uint8: grey, then each (mask, colour) painted in order."""
    image = np.empty((3, height, width), np.uint8)
    image[:] = np.array(GREY, np.uint8)[:, None, None]
    for mask, colour in shapes:
        image[:, mask] = np.array(colour, np.uint8)[:, None]
    return image


def rect_mask(height=256, width=320, rect=RECT) -> np.ndarray:
    y0, y1, x0, x1 = rect
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rect_scene() -> np.ndarray:
    return paint(256, 320, [(rect_mask(), RED)])


def at(transform, col: float, row: float) -> tuple[float, float]:
    """Pixel (col, row) -> CRS (x, y)."""
    return (
        transform.a * col + transform.b * row + transform.c,
        transform.d * col + transform.e * row + transform.f,
    )


def pixel_box(transform, rect=RECT):
    """The rectangle (rows y0..y1, cols x0..x1) as a polygon in the transform's CRS."""
    y0, y1, x0, x1 = rect
    return shapely.affinity.affine_transform(
        shapely.box(x0, y0, x1, y1),
        [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f],
    )


def project(geometry, source: str, target: str):
    if source == target:
        return geometry
    move = transformer(source, target).transform
    return shapely.transform(geometry, lambda xy: np.column_stack(move(xy[:, 0], xy[:, 1])))


def read_features(path: Path) -> tuple[list, str, dict[str, np.ndarray]]:
    """(geometries, the file's CRS as "AUTH:CODE" or WKT, fields by name)."""
    meta, _, geometries, values = pyogrio.raw.read(path)
    crs = meta["crs"]
    return list(shapely.from_wkb(geometries)), crs, dict(zip(meta["fields"], values, strict=True))


def iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("geotiffs")
    nodata = rect_scene()
    nodata[:, :, :80] = 0  # no data left of the rectangle, touching it
    multi = np.full((5, 256, 320), 1000, np.uint16)
    shape = rect_mask()
    multi[0][shape] = multi[1][shape] = 4000  # bands 3,2,1 show the rectangle in colour
    multi[2][shape] = 500
    multi[3:] = 2000  # bands 4 and 5 are flat
    return {
        "utm": write_tif(folder / "utm.tif", rect_scene()),
        "wgs": write_tif(folder / "wgs.tif", rect_scene(), crs=WGS84, transform=WGS_TRANSFORM),
        "nodata": write_tif(folder / "nodata.tif", nodata, nodata=0),
        "uint16": write_tif(folder / "uint16.tif", multi),
        "no_crs": write_tif(folder / "no_crs.tif", rect_scene(), crs=None),
        "grey": write_tif(folder / "grey.tif", rect_scene()[:1]),
    }


# ---- reading: bands, stretch, nodata, coordinates -------------------------------------------


def test_bands_stretch_and_nodata_make_sams_input(scenes):
    with open_geotiff(scenes["uint16"], bands=(3, 2, 1)) as raster:
        rgb, valid = raster.read(Window(0, 0, 320, 256))
    assert rgb.shape == (256, 320, 3) and rgb.dtype == np.uint8 and valid.all()
    inside, outside = rgb[100, 130], rgb[10, 10]
    # Percentile stretch: each band's background and rectangle values span its range.
    assert list(inside) == [0, 255, 255] and list(outside) == [255, 0, 0]

    with open_geotiff(scenes["grey"]) as raster:
        rgb, _ = raster.read(Window(0, 0, 320, 256))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()

    with open_geotiff(scenes["nodata"]) as raster:
        rgb, valid = raster.read(Window(40, 0, 100, 256))  # a window across the nodata edge
        assert not valid[:, :40].any() and valid[:, 40:].all()
        assert not rgb[:, :40].any()
        assert not raster.valid(Window(0, 0, 80, 256)).any()


def test_prompts_in_any_crs_land_on_the_same_pixel(scenes):
    with open_geotiff(scenes["utm"]) as raster:
        x, y = at(UTM_TRANSFORM, *INSIDE)
        lng, lat = transformer(UTM, WGS84).transform(x, y)
        mx, my = transformer(UTM, "EPSG:3857").transform(x, y)
        for xy, crs in (((x, y), None), ((lng, lat), WGS84), ((mx, my), "EPSG:3857")):
            np.testing.assert_allclose(raster.to_pixels([xy], crs)[0], INSIDE, atol=1e-6)


def test_errors_say_what_is_wrong(scenes, tmp_path):
    with pytest.raises(DataError, match="no coordinate reference system"):
        open_geotiff(scenes["no_crs"])
    with pytest.raises(ConfigError, match="band 6 does not exist.*5 band"):
        open_geotiff(scenes["uint16"], bands=(6, 2, 1))
    with pytest.raises(ConfigError, match="1 band .* or 3"):
        open_geotiff(scenes["uint16"], bands=(1, 2))
    with pytest.raises(DataError, match="not found"):
        open_geotiff(tmp_path / "missing.tif")
    (tmp_path / "text.tif").write_text("not a raster")
    with pytest.raises(DataError, match="not a raster"):
        open_geotiff(tmp_path / "text.tif")


def test_the_window_around_prompts():
    # A small raster is read whole; a large one around the prompts, moved inside the raster.
    assert pixel_window(np.array([[10.0, 10.0]]), 500, 400, 1024) == (0, 0, 500, 400)
    assert pixel_window(np.array([[5000.0, 10.0]]), 20_000, 20_000, 1024) == (4488, 0, 1024, 1024)
    wide = pixel_window(np.array([[100.0, 100.0], [3000.0, 200.0]]), 20_000, 20_000, 1024)
    assert wide[0] <= 100 and wide[0] + wide[2] >= 3000 and wide[3] == 1024


# ---- segany geo segment ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_segment_writes_the_shapes_polygon(scenes, tmp_path, capsys, suffix):
    x, y = at(UTM_TRANSFORM, *INSIDE)
    out = tmp_path / f"rect{suffix}"
    code, stdout, err = run(
        capsys, "geo", "segment", scenes["utm"], "--point", f"{x},{y}", "--out", out
    )
    assert code == 0, err
    assert "1 polygon" in stdout
    geometries, crs, fields = read_features(out)
    assert len(geometries) == 1  # the object only: no background polygon
    file_crs = WGS84 if suffix == ".geojson" else UTM  # GeoJSON: RFC 7946's lng/lat
    assert rasterio.crs.CRS.from_user_input(crs) == rasterio.crs.CRS.from_user_input(file_crs)
    expected = project(pixel_box(UTM_TRANSFORM), UTM, file_crs)
    assert iou(geometries[0], expected) > 0.9
    assert fields["score"][0] > 0.5
    assert fields["area_m2"][0] == pytest.approx(8000 * 100, rel=0.1)  # 8000 px of 100 m²


@pytest.mark.parametrize(
    "raster, prompt_crs",
    [("utm", WGS84), ("utm", "EPSG:3857"), ("wgs", None), ("wgs", UTM)],
)
def test_segment_with_prompts_in_another_crs(scenes, tmp_path, capsys, raster, prompt_crs):
    raster_crs, transform = (UTM, UTM_TRANSFORM) if raster == "utm" else (WGS84, WGS_TRANSFORM)
    x, y = at(transform, *INSIDE)
    if prompt_crs is not None:
        x, y = transformer(raster_crs, prompt_crs).transform(x, y)
    crs = [] if prompt_crs is None else ["--crs", prompt_crs]
    out = tmp_path / "rect.gpkg"
    code, _, err = run(
        capsys, "geo", "segment", scenes[raster], "--point", f"{x},{y}", *crs, "--out", out
    )
    assert code == 0, err
    geometries, _, _ = read_features(out)
    assert len(geometries) == 1
    assert iou(geometries[0], pixel_box(transform)) > 0.9


def test_segment_with_a_box_in_lnglat(scenes, tmp_path, capsys):
    corners = pixel_box(UTM_TRANSFORM, (55, 145, 75, 185))
    lnglat = project(corners, UTM, WGS84).bounds
    out = tmp_path / "box.geojson"
    code, _, err = run(
        capsys, "geo", "segment", scenes["utm"], "--box", ",".join(map(str, lnglat)),
        "--crs", WGS84, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    geometries, _, _ = read_features(out)
    assert len(geometries) == 1
    assert iou(geometries[0], project(pixel_box(UTM_TRANSFORM), UTM, WGS84)) > 0.9


def test_segment_of_selected_bands_of_a_uint16_raster(scenes, tmp_path, capsys):
    x, y = at(UTM_TRANSFORM, *INSIDE)
    out = tmp_path / "rect.gpkg"
    code, _, err = run(
        capsys, "geo", "segment", scenes["uint16"], "--bands", "3,2,1", "--point", f"{x},{y}",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    geometries, _, _ = read_features(out)
    assert len(geometries) == 1 and iou(geometries[0], pixel_box(UTM_TRANSFORM)) > 0.9


def test_segment_never_includes_nodata(scenes, tmp_path, capsys):
    x, y = at(UTM_TRANSFORM, *INSIDE)
    out = tmp_path / "rect.gpkg"
    code, _, err = run(
        capsys, "geo", "segment", scenes["nodata"], "--point", f"{x},{y}", "--out", out
    )
    assert code == 0, err
    geometries, _, _ = read_features(out)
    empty = pixel_box(UTM_TRANSFORM, (0, 256, 0, 80))
    assert sum(g.intersection(empty).area for g in geometries) == 0
    assert iou(shapely.union_all(geometries), pixel_box(UTM_TRANSFORM)) > 0.9


@pytest.mark.parametrize(
    "scene, extra, message",
    [
        ("no_crs", ["--point", "10,10"], "no coordinate reference system"),
        ("uint16", ["--bands", "3,2,9", "--point", "500100,4999000"], "band 9 does not exist"),
        ("uint16", ["--bands", "3,x,1", "--point", "500100,4999000"], "band numbers"),
        ("utm", ["--point", "10,10"], "lies outside the raster"),
        ("utm", ["--point", "15.0,45.0", "--crs", WGS84], "lies outside the raster"),
        ("utm", ["--point", "1,1", "--crs", "EPSG:99999"], "unknown CRS"),
        ("utm", ["--box", "500000,4998000,600000,4999000"], "reaches outside the raster"),
        ("nodata", ["--point", "500100,4999000"], "nodata"),
        ("utm", [], "at least one --point"),
    ],
)
def test_segment_errors_exit_2(scenes, tmp_path, capsys, scene, extra, message):
    out = tmp_path / "out.gpkg"
    code, _, err = run(capsys, "geo", "segment", scenes[scene], *extra, "--out", out)
    assert code == 2
    assert message in err
    assert not out.exists()


def test_an_unknown_output_format_exits_2(scenes, tmp_path, capsys):
    code, _, err = run(
        capsys,
        "geo",
        "segment",
        scenes["utm"],
        "--point",
        "500100,4999000",
        "--out",
        tmp_path / "a.csv",
    )
    assert code == 2 and ".geojson, .gpkg or .shp" in err


def test_without_the_geo_extra_the_commands_say_what_to_install(monkeypatch, capsys, tmp_path):
    for name in [m for m in sys.modules if m.startswith("segany.geo")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rasterio", None)  # as if it were not installed
    code, _, err = run(capsys, "geo", "amg", tmp_path / "in.tif", "--out", tmp_path / "o.gpkg")
    assert code == 2 and "needs rasterio" in err and "pip install 'segany[geo]'" in err


# ---- POST /api/geo/segment ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from segany.server.app import create_app
    from segany.server.settings import ServerSettings

    data = tmp_path_factory.mktemp("server") / "data"
    app = create_app(ServerSettings(data_dir=data, pre_encode=False))
    with TestClient(app, base_url=LOCAL_URL) as client:
        yield client


def test_http_segment_answers_geojson_in_lnglat(client, scenes):
    x, y = at(UTM_TRANSFORM, *INSIDE)
    lng, lat = transformer(UTM, WGS84).transform(x, y)
    response = client.post(
        "/api/geo/segment",
        files={"file": ("utm.tif", scenes["utm"].read_bytes(), "image/tiff")},
        data={"prompts": json.dumps({"points": [[lng, lat, 1]], "crs": WGS84})},
    )
    assert response.status_code == 200, response.text
    collection = response.json()
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 1
    feature = collection["features"][0]
    polygon = shapely.geometry.shape(feature["geometry"])
    assert iou(polygon, project(pixel_box(UTM_TRANSFORM), UTM, WGS84)) > 0.9
    assert feature["properties"]["score"] > 0.5
    assert feature["properties"]["area_m2"] == pytest.approx(8000 * 100, rel=0.1)


@pytest.mark.parametrize(
    "scene, prompts, status, message",
    [
        ("no_crs", {"points": [[10, 10, 1]]}, 422, "no coordinate reference system"),
        ("utm", {"points": [[1, 1, 1]]}, 422, "outside the raster"),
        ("utm", {"points": [[500100, 4999000, 7]]}, 422, "label"),
        ("utm", {"points": []}, 422, "at least one point"),
        ("utm", {"points": [[500100, 4999000, 1]], "bands": [4]}, 422, "band 4 does not exist"),
        ("utm", "{not json", 422, "not valid"),
    ],
)
def test_http_segment_errors(client, scenes, scene, prompts, status, message):
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    response = client.post(
        "/api/geo/segment",
        files={"file": ("x.tif", scenes[scene].read_bytes(), "image/tiff")},
        data={"prompts": text},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_http_segment_refuses_a_file_that_is_no_raster(client):
    response = client.post(
        "/api/geo/segment",
        files={"file": ("x.tif", b"hello", "image/tiff")},
        data={"prompts": json.dumps({"points": [[1, 1, 1]]})},
    )
    assert response.status_code == 422 and "not a raster" in response.json()["detail"]


# ---- windows and seams (no model) -----------------------------------------------------------


def test_tile_grid_covers_the_raster_with_whole_overlapping_windows():
    tiles = tile_grid(1000, 600, 256, 64)
    assert [t.index for t in tiles] == list(range(len(tiles)))
    covered = np.zeros((600, 1000), int)
    for t in tiles:
        assert (t.width, t.height) == (256, 256)
        covered[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] += 1
    assert covered.min() >= 1
    cols = sorted({t.col_off for t in tiles})
    assert cols[-1] + 256 == 1000 and all(
        b - a <= 192 for a, b in zip(cols[:-1], cols[1:], strict=True)
    )
    assert tile_grid(100, 50, 256, 64)[0].width == 100  # smaller than a window: one window


def test_seam_merging_joins_pieces_of_one_object_and_only_those():
    # Two windows side by side: columns 0..100 and 60..160 (overlap 60..100).
    tiles = tile_grid(160, 100, 100, 40)
    assert len(tiles) == 2
    left, right = tiles
    crossing = shapely.box(30, 10, 130, 30)  # crosses the seam
    in_strip = shapely.box(70, 50, 90, 60)  # inside the overlap: seen whole twice
    around = shapely.box(65, 40, 95, 70)  # a larger mask around `in_strip`
    apart_a, apart_b = shapely.box(40, 80, 80, 95), shapely.box(80, 80, 120, 95)  # touching
    found = {
        left.index: [crossing & shapely.box(0, 0, 100, 100), in_strip, around, apart_a],
        right.index: [crossing & shapely.box(60, 0, 160, 100), in_strip, around, apart_b],
    }
    merged = list(merge_pieces(tiles, lambda t: [Piece(g, 0.9, 0.9) for g in found[t.index]]))
    geometries = [m.geometry for m in merged]
    assert len(merged) == 5
    assert sum(iou(g, crossing) > 0.99 for g in geometries) == 1
    assert sum(iou(g, in_strip) > 0.99 for g in geometries) == 1
    assert sum(iou(g, around) > 0.99 for g in geometries) == 1
    assert sum(iou(g, apart_a) > 0.99 for g in geometries) == 1
    assert sum(iou(g, apart_b) > 0.99 for g in geometries) == 1
    assert {m.tiles for m in merged if iou(m.geometry, crossing) > 0.99} == {2}


# ---- segany geo amg -------------------------------------------------------------------------


# A 640 x 640 px scene, windows of 256 px overlapping by 64 (offsets 0, 192, 384 each way): three
# shapes cross window seams, one sits in an overlap; the bottom 256 rows are nodata, so the
# bottom row of windows (rows 384..640) is skipped.
def _rect(y0: int, y1: int, x0: int, x1: int):
    return lambda yy, xx: (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


SEAM_SHAPES = {
    "across a vertical seam": (_rect(60, 140, 150, 300), RED),
    "across a corner": (lambda yy, xx: (yy - 224) ** 2 + (xx - 224) ** 2 < 55**2, BLUE),
    "across a horizontal seam": (_rect(150, 300, 420, 500), GREEN),
    "in an overlap": (_rect(80, 120, 440, 480), YELLOW),
}
SEAM_ARGS = [
    "--tile-size", "256", "--overlap", "64", "--points-per-side", "16",
    "--pred-iou-thresh", "0.75", "--stability-score-thresh", "0.85", "--quiet",
]  # fmt: skip
SEAM_TRANSFORM = from_origin(500_000, 5_000_000, 1, 1)


def seam_masks() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:640, :640]
    return {name: rule(yy, xx) for name, (rule, _) in SEAM_SHAPES.items()}


@pytest.fixture(scope="module")
def seams(tmp_path_factory):
    """The seam scene, and one uninterrupted `segany geo amg` run of it (stdout, output)."""
    folder = tmp_path_factory.mktemp("seams")
    masks = seam_masks()
    image = paint(640, 640, [(masks[n], colour) for n, (_, colour) in SEAM_SHAPES.items()])
    image[:, 384:] = 0
    tif = write_tif(folder / "shapes.tif", image, transform=SEAM_TRANSFORM, nodata=0)
    out = folder / "whole.gpkg"
    code = main(["geo", "amg", str(tif), "--out", str(out), *SEAM_ARGS])
    assert code == 0
    return tif, out


def test_amg_joins_shapes_across_window_seams(seams):
    _, out = seams
    geometries, crs, fields = read_features(out)
    assert rasterio.crs.CRS.from_user_input(crs) == rasterio.crs.CRS.from_user_input(UTM)
    for name, mask in seam_masks().items():
        truth = _mask_polygon(mask)
        # Polygons that are mostly this shape and not a speck: exactly one is the whole shape
        # (its pieces from every window joined); the others can only be small part proposals
        # (the model may outline a corner of the shape that a window sees at its edge), not a
        # second half of the shape left unjoined.
        on_it = [
            g
            for g in geometries
            if g.intersection(truth).area > 0.5 * g.area and g.area > 0.05 * truth.area
        ]
        whole = [g for g in on_it if iou(g, truth) > 0.8]
        assert len(whole) == 1, f"{name}: {len(whole)} whole polygons of {len(on_it)}"
        assert all(g.area < 0.15 * truth.area for g in on_it if g is not whole[0]), name
    assert fields["tiles"].max() >= 4  # the disc across the corner: four windows
    nodata = pixel_box(SEAM_TRANSFORM, (384, 640, 0, 640))
    assert all(g.intersection(nodata).area == 0 for g in geometries)
    assert not parts_folder(out).exists()


def _mask_polygon(mask: np.ndarray):
    from segany.geo.vector import shapes_in_crs

    return shapely.union_all(shapes_in_crs(mask, SEAM_TRANSFORM))


def test_amg_outlines_are_edge_refined_after_the_join(seams, tmp_path):
    """segany-tiny-v2 refines its masks: each joined object is refined on the raster's pixels
    (`outline_refinement`), which brings the outlines closer to the painted shapes than the
    plain masks (`--no-edge-refinement`) are."""
    tif, refined_out = seams
    plain_out = tmp_path / "plain.gpkg"
    assert (
        main(["geo", "amg", str(tif), "--out", str(plain_out), *SEAM_ARGS, "--no-edge-refinement"])
        == 0
    )
    scores = {}
    for name, out in (("plain", plain_out), ("refined", refined_out)):
        geometries = read_features(out)[0]
        scores[name] = [
            max(iou(g, _mask_polygon(mask)) for g in geometries) for mask in seam_masks().values()
        ]
    assert np.mean(scores["refined"]) > np.mean(scores["plain"]), scores
    assert min(scores["refined"]) > 0.8, scores


def test_refine_outline_snaps_to_the_colour_edge_and_keeps_to_the_data(tmp_path, monkeypatch):
    from affine import Affine

    from segany.geo import outline_refinement
    from segany.geo.outline_refinement import refine_outline
    from segany.geo.vector import shapes_in_crs

    yy, xx = np.mgrid[:200, :240]
    disc = (yy - 100) ** 2 + (xx - 110) ** 2 < 60**2
    image = paint(200, 240, [(disc, RED)])
    image[:, :, 200:] = 0  # nodata on the right (bands, rows, columns)
    tif = write_tif(tmp_path / "disc.tif", image, transform=SEAM_TRANSFORM, nodata=0)
    truth_px = shapely.union_all(shapes_in_crs(disc, Affine.identity()))  # pixel frame
    coarse = truth_px.buffer(4, quad_segs=2)  # 4 px too wide, blocky: a coarse mask's outline
    too_wide = shapely.box(60, 50, 230, 150)  # reaches into the nodata columns
    with open_geotiff(tif) as raster:
        refined = refine_outline(raster, coarse, radius=8, eps=3e-4, subsample=1)
        assert iou(refined, truth_px) > iou(coarse, truth_px) + 0.05
        assert iou(refined, truth_px) > 0.9
        clipped = refine_outline(raster, too_wide, radius=8, eps=3e-4, subsample=4)
        assert clipped.bounds[2] <= 200  # nothing on nodata
        monkeypatch.setattr(outline_refinement, "MAX_PIXELS", 100)
        assert refine_outline(raster, coarse, radius=8, eps=3e-4, subsample=1) is coarse


def test_amg_skips_nodata_windows_and_resumes_to_the_same_output(seams, tmp_path):
    import segany

    tif, whole = seams
    model = segany.build_sam()  # the default model, as `segany geo amg` above
    amg = AmgConfig.for_model(
        model.spec, points_per_side=16, pred_iou_thresh=0.75, stability_score_thresh=0.85
    )
    options = TiledOptions(tile_size=256, overlap=64)
    out = tmp_path / "resumed.gpkg"
    seen = []

    def fail_after_four(tile):
        seen.append(tile.index)
        if len(seen) == 4:
            raise RuntimeError("injected failure")

    with open_geotiff(tif) as raster:
        with pytest.raises(RuntimeError, match="injected"):
            run_tiled_amg(raster, model, out, options, amg, progress=False, on_tile=fail_after_four)
        assert not out.exists() and len(list(parts_folder(out).glob("tile-*.json"))) == 4
        summary = run_tiled_amg(raster, model, out, options, amg, progress=False)
    assert (summary.windows, summary.resumed, summary.processed, summary.skipped) == (9, 4, 2, 3)
    assert not parts_folder(out).exists()
    assert read_features(out)[0] == read_features(whole)[0]
    np.testing.assert_array_equal(read_features(out)[2]["score"], read_features(whole)[2]["score"])


def test_amg_reports_windows_and_refuses_to_clobber(seams, tmp_path, capsys):
    tif, _ = seams
    out = tmp_path / "amg.geojson"
    code, stdout, err = run(capsys, "geo", "amg", tif, "--out", out, *SEAM_ARGS)
    assert code == 0, err
    assert "9 windows: 6 segmented, 3 skipped as nodata" in stdout
    assert len(read_features(out)[0]) >= 4
    code, _, err = run(capsys, "geo", "amg", tif, "--out", out, *SEAM_ARGS)
    assert code == 2 and "--overwrite" in err


def test_amg_refuses_to_resume_with_other_options(seams, tmp_path):
    import segany

    tif, _ = seams
    model = segany.build_sam("test_tiny", pretrained=False, seed=0)
    out = tmp_path / "x.gpkg"
    with open_geotiff(tif) as raster:
        with pytest.raises(RuntimeError):
            run_tiled_amg(
                raster, model, out, TiledOptions(tile_size=256, overlap=64),
                AmgConfig(points_per_side=2), progress=False,
                on_tile=lambda tile: (_ for _ in ()).throw(RuntimeError("stop")),
            )  # fmt: skip
        with pytest.raises(ConfigError, match="overlap differ"):
            run_tiled_amg(
                raster,
                model,
                out,
                TiledOptions(tile_size=256, overlap=32),
                AmgConfig(points_per_side=2),
                progress=False,
            )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tile-size", "256", "--overlap", "200"], "overlap must be in 0..128"),
        (["--tile-size", "8"], "at least 32"),
        (["--seam-iou", "0"], "seam IoU"),
        (["--points-per-side", "0"], "points_per_side"),
    ],
)
def test_amg_option_errors_exit_2(scenes, tmp_path, capsys, args, message):
    code, _, err = run(capsys, "geo", "amg", scenes["utm"], "--out", tmp_path / "o.gpkg", *args)
    assert code == 2 and message in err


# ---- memory on a 20,000 x 20,000 px raster ---------------------------------------------------

BIG = 20_000
# Runs the command in a fresh interpreter and prints its baseline RSS (after the imports the
# command needs), its peak RSS, and tracemalloc's peak (NumPy arrays and Python objects: the
# windows' pixels and masks; torch's own buffers are not traced), all in bytes.
MEASURE = """
import re, sys, tracemalloc
def status(key):
    text = open("/proc/self/status").read()
    return int(re.search(key + r":\\s+(\\d+)", text).group(1)) * 1024
from segany.cli.main import main
import segany.geo.tiled_amg
baseline = status("VmRSS")
tracemalloc.start()
code = main(sys.argv[1:])
print("MEMORY", baseline, status("VmHWM"), tracemalloc.get_traced_memory()[1])
sys.exit(code)
"""


def write_big_raster(path: Path, side: int = BIG) -> Path:
    """A side x side px, 3-band uint8 GeoTIFF (1.2 GB uncompressed at 20,000 px): tiled,
    compressed and sparse (unwritten blocks read as nodata), with one flat-coloured 3000 px
    field holding a disc, so a few windows hold data and the rest are nodata."""
    profile = dict(
        driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs=UTM,
        transform=UTM_TRANSFORM, nodata=0, tiled=True, blockxsize=512, blockysize=512,
        compress="deflate", sparse_ok=True,
    )  # fmt: skip
    field = np.empty((3, 3000, 3000), np.uint8)
    field[:] = np.array(GREY, np.uint8)[:, None, None]
    yy, xx = np.mgrid[:3000, :3000]
    field[:, (yy - 1500) ** 2 + (xx - 1500) ** 2 < 600**2] = np.array(RED, np.uint8)[:, None]
    with rasterio.open(path, "w", **profile) as out:
        out.write(field, window=Window(side // 4, side // 4, 3000, 3000))
    return path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_amg_memory_stays_bounded_on_a_20000_px_raster(tmp_path):
    tif = write_big_raster(tmp_path / "big.tif")
    assert tif.stat().st_size < 10 * 2**20
    out = tmp_path / "big.gpkg"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    # The tiling is what is measured, so the smaller built-in model: its forward passes add
    # ~270 MiB to torch's baseline, where segany-tiny-v2's 512 px passes add 340-420 MiB
    # (README, `bench_geo_amg.py`), which would leave this bound little room.
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "geo", "amg", str(tif), "--out", str(out),
         "--tile-size", "1024", "--overlap", "128", "--points-per-side", "4",
         "--model", "segany-tiny", "--quiet"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "529 windows: 16 segmented, 513 skipped as nodata" in done.stdout
    baseline, peak, traced = (int(v) for v in done.stdout.split("MEMORY")[1].split())
    uncompressed = BIG * BIG * 3  # 1.2 GB
    report = f"baseline {baseline >> 20} MiB, peak {peak >> 20} MiB, traced {traced >> 20} MiB"
    # torch alone holds ~0.5 GB before the first window; what the run adds on top is what
    # would grow with the raster if anything did.
    assert peak - baseline < uncompressed / 3, report
    assert traced < 100 * 2**20, report
    assert peak < uncompressed, report
    geometries, _, _ = read_features(out)
    assert geometries  # the field and its disc were found
