"""segany.geo and the SamGIS-compatible endpoint: the projection against pyproj, tiles (fetch,
on-disk cache, limit, every way a tile server fails), stitching, masks -> GeoJSON (no
background, holes kept, areas), and `POST /infer_samgis` on a local tile server with the
built-in model: a click inside a shape gives a polygon around it at the right lat/lng. Nothing
here touches the internet."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyproj  # noqa: E402
import pytest
import rasterio  # noqa: E402,F401  (segany[geo], in segany[dev]: missing, collection fails)
import xyzservices  # noqa: E402,F401
from affine import Affine  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from shapely.geometry import Point, shape  # noqa: E402

from conftest import unused_local_port  # noqa: E402
from geo_helpers import BACKGROUND, Scene, TileServer, metres_per_pixel, to_lnglat  # noqa: E402
from segany.errors import ConfigError  # noqa: E402
from segany.geo import projection, vector  # noqa: E402
from segany.geo.errors import ExtentError, TileError  # noqa: E402
from segany.geo.raster import Extent, extent_grid, extent_image, stitch  # noqa: E402
from segany.geo.tiles import TileFetcher, resolve_source, template_source  # noqa: E402
from segany.predictor import SamPredictor  # noqa: E402
from segany.server.app import create_app  # noqa: E402
from segany.server.settings import Limits, ServerSettings  # noqa: E402
from server_helpers import LOCAL_URL  # noqa: E402

SCENE = Scene()
RESPONSE_KEYS = {"n_predictions", "geojson", "n_shapes_geojson", "duration_run", "cached_embedding"}


@pytest.fixture(scope="module")
def tiles():
    with TileServer(SCENE, slow_s=2.0) as server:
        yield server


# ---- projection -------------------------------------------------------------------------------


def test_lnglat_round_trip_matches_pyproj_within_1e_6_degrees():
    rng = np.random.default_rng(0)
    lng = rng.uniform(-180, 180, 2000)
    lat = rng.uniform(-projection.MAX_LAT, projection.MAX_LAT, 2000)
    to_3857 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    to_4326 = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    for zoom in (0, 5, 12, 18, 22):
        px, py = projection.lnglat_to_pixel(lng, lat, zoom)
        # world pixels -> metres by the tile scheme, then pyproj's own inverse
        size = 2 * math.pi * 6378137 / (256 * 2**zoom)
        back_lng, back_lat = to_4326.transform(
            px * size - math.pi * 6378137, math.pi * 6378137 - py * size
        )
        assert np.abs(back_lng - lng).max() < 1e-6 and np.abs(back_lat - lat).max() < 1e-6
        lng2, lat2 = projection.pixel_to_lnglat(px, py, zoom)
        assert np.abs(lng2 - lng).max() < 1e-6 and np.abs(lat2 - lat).max() < 1e-6
    x, y = projection.lnglat_to_mercator(lng, lat)
    ex, ey = to_3857.transform(lng, lat)
    assert np.abs(x - ex).max() < 1e-6 and np.abs(y - ey).max() < 1e-6


def test_world_pixels_follow_the_xyz_formula():
    # SamGIS's formula: x = 256 2^z (0.5 + lng/360), y = 256 2^z (0.5 - ln((1+s)/(1-s))/(4 pi))
    for lng, lat, zoom in [(7.0, 45.0, 16), (-122.4, 37.8, 12), (0.0, 0.0, 0), (179.9, -80.0, 9)]:
        s = math.sin(math.radians(lat))
        size = 256 * 2**zoom
        px, py = projection.lnglat_to_pixel(lng, lat, zoom)
        assert px == pytest.approx(size * (0.5 + lng / 360), abs=1e-6)
        assert py == pytest.approx(
            size * (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)), abs=1e-6
        )


def test_projection_refuses_positions_off_the_map():
    for lng, lat in [(181, 0), (0, 86), (0, -90), (float("nan"), 0)]:
        with pytest.raises(ExtentError, match="outside"):
            projection.check_lnglat(lng, lat)
    for zoom in (-1, 25, 3.5):
        with pytest.raises(ExtentError, match="zoom"):
            projection.check_zoom(zoom)
    assert projection.check_zoom(15.0) == 15


# ---- tiles ------------------------------------------------------------------------------------


def test_sources_by_provider_name_and_template():
    mapnik = resolve_source("OpenStreetMap.Mapnik")
    assert mapnik.url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert mapnik.max_zoom == 19 and "OpenStreetMap" in mapnik.attribution
    assert resolve_source("OpenStreetMap").name == "OpenStreetMap.Mapnik"  # a group: its first
    assert resolve_source("openstreetmap mapnik").name == "OpenStreetMap.Mapnik"
    with pytest.raises(ExtentError, match="unknown tile source 'NoSuchMaps'"):
        resolve_source("NoSuchMaps")
    custom = resolve_source("http://{s}.example.test/{z}/{x}/{y}{r}.png")
    assert custom.tile_url(3, 4, 5) == "http://a.example.test/3/4/5.png"
    override = resolve_source("OpenStreetMap.Mapnik", override="http://127.0.0.1:1/{z}/{x}/{y}")
    assert (
        override.url == "http://127.0.0.1:1/{z}/{x}/{y}" and override.name == "OpenStreetMap.Mapnik"
    )
    with pytest.raises(ExtentError, match=r"\{z\}, \{x\} and \{y\}"):
        template_source("http://example.test/{z}/{x}.png")


def test_fetch_is_concurrent_cached_on_disk_and_limited(tiles, tmp_path):
    source = template_source(tiles.template("ok"))
    wanted = [(16, 34133 + dx, 23575 + dy) for dx in range(3) for dy in range(2)]
    fetcher = TileFetcher(tmp_path / "tiles", max_tiles=6)
    before = tiles.count("ok")
    got = fetcher.fetch(source, wanted)
    assert set(got) == set(wanted) and tiles.count("ok") == before + 6
    for tile, pixels in got.items():
        assert pixels.shape == (256, 256, 3) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, SCENE.render(*tile))
    again = TileFetcher(tmp_path / "tiles", max_tiles=6).fetch(source, wanted)  # a new fetcher
    assert tiles.count("ok") == before + 6  # every tile from the disk cache
    assert all(np.array_equal(again[t], got[t]) for t in wanted)
    stale = TileFetcher(tmp_path / "tiles", max_tiles=6, max_age_s=0)
    stale.fetch(source, wanted[:2])
    assert tiles.count("ok") == before + 8  # too old: fetched again
    with pytest.raises(ExtentError, match="7 map tiles, over the limit of 6 tiles"):
        fetcher.fetch(source, [*wanted, (16, 0, 0)])


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", "answered 500"),
        ("missing", "answered 404"),
        ("text", "is not an image"),
        ("slow", "timed out after 0.3 s"),
    ],
)
def test_tile_server_failures_name_the_url(tiles, tmp_path, mode, message):
    source = template_source(tiles.template(mode))
    fetcher = TileFetcher(tmp_path / "tiles", timeout_s=0.3)
    with pytest.raises(TileError, match=message) as caught:
        fetcher.fetch(source, [(3, 4, 2), (3, 5, 2)])
    assert caught.value.url.startswith(f"http://127.0.0.1:{tiles.port}/{mode}/3/")
    assert caught.value.url in str(caught.value)
    assert not list((tmp_path / "tiles").rglob("*.tile"))  # nothing bad was cached


def test_unreachable_tile_server(tmp_path):
    source = template_source(f"http://127.0.0.1:{unused_local_port()}/{{z}}/{{x}}/{{y}}.png")
    with pytest.raises(TileError, match="cannot reach the tile server for http://127.0.0.1"):
        TileFetcher(None, timeout_s=2).fetch(source, [(1, 0, 0)])


# ---- raster: grid, stitching, transform ------------------------------------------------------


def test_grid_of_a_tile_aligned_extent():
    zoom = 10
    west, north = projection.pixel_to_lnglat(256 * 300, 256 * 400, zoom)
    east, south = projection.pixel_to_lnglat(256 * 302, 256 * 403, zoom)
    grid = extent_grid(Extent(west, south, east, north), zoom)
    assert (grid.left, grid.top, grid.width, grid.height) == (256 * 300, 256 * 400, 512, 768)
    assert grid.tiles == [(10, x, y) for y in (400, 401, 402) for x in (300, 301)]


def test_stitched_crop_and_transform_agree_with_the_scene(tiles):
    extent = Extent(*_bbox_corners(SCENE.bbox()))
    grid = extent_grid(extent, SCENE.zoom)
    image = extent_image(grid, template_source(tiles.template("ok")), TileFetcher(None))
    assert image.shape == (grid.height, grid.width, 3)
    # Every pixel's centre, through the transform and pyproj, is where the scene drew it.
    t = grid.transform
    for name in SCENE.shapes:
        lng, lat = SCENE.inside(name)
        x, y = projection.lnglat_to_mercator(lng, lat)
        col, row = (x - t.c) / t.a, (y - t.f) / t.e
        assert tuple(image[int(row), int(col)]) == SCENE.shapes[name].color
    corner_x = t.c  # the top-left corner of pixel (0, 0)
    res = metres_per_pixel(SCENE.zoom)
    assert t.a == pytest.approx(res) and t.e == pytest.approx(-res)
    assert corner_x == pytest.approx(grid.left * res - math.pi * 6378137, abs=1e-6)
    # the extent lies within the grid, and the grid is at most one pixel larger on each side
    x0, y0 = grid.to_image(extent.west, extent.north)
    x1, y1 = grid.to_image(extent.east, extent.south)
    assert 0 <= x0 < 1 and 0 <= y0 < 1 and grid.width - 1 < x1 <= grid.width
    assert grid.height - 1 < y1 <= grid.height


def test_stitch_places_each_tile():
    grid = extent_grid(Extent(*_bbox_corners(SCENE.bbox())), SCENE.zoom)
    numbered = {tile: np.full((256, 256, 3), i, np.uint8) for i, tile in enumerate(grid.tiles)}
    image = stitch(grid, numbered)
    for i, (_, tx, ty) in enumerate(grid.tiles):
        row = min(max(ty * 256 + 128 - grid.top, 0), grid.height - 1)
        col = min(max(tx * 256 + 128 - grid.left, 0), grid.width - 1)
        assert image[row, col, 0] == i


def test_inverted_or_empty_extent():
    with pytest.raises(ExtentError, match="inverted"):
        Extent(west=8.0, south=45.0, east=7.0, north=46.0)
    with pytest.raises(ExtentError, match="inverted"):
        Extent(west=7.0, south=45.0, east=8.0, north=45.0)


# ---- vector: masks -> GeoJSON ----------------------------------------------------------------

EQUATOR = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 500.0)  # 10 m pixels (EPSG:3857) at the equator


def test_no_background_polygon_and_holes_kept():
    mask = np.zeros((50, 50), bool)
    mask[5:45, 5:45] = True
    mask[15:25, 15:25] = False  # a hole
    features = vector.mask_to_features(mask, EQUATOR, "EPSG:3857", {"score": 0.9})
    assert len(features) == 1  # only the object: no polygon for the background
    geometry = features[0]["geometry"]
    assert geometry["type"] == "Polygon" and len(geometry["coordinates"]) == 2  # the hole
    polygon = shape(geometry)
    assert polygon.is_valid and len(polygon.interiors) == 1
    # the hole is where the mask says, in lng/lat
    hole_lng, hole_lat = pyproj.Transformer.from_crs(
        "EPSG:3857", "EPSG:4326", always_xy=True
    ).transform(200.0, 500.0 - 200.0)
    assert not polygon.contains(Point(hole_lng, hole_lat))
    assert features[0]["properties"]["score"] == 0.9
    assert vector.mask_to_features(np.zeros((8, 8), bool), EQUATOR, "EPSG:3857") == []


def test_one_feature_per_region_and_areas_in_m2():
    mask = np.zeros((60, 60), bool)
    mask[0:20, 0:30] = True  # 600 px of 100 m²
    mask[40:50, 40:50] = True  # 100 px
    features = vector.mask_to_features(mask, EQUATOR, "EPSG:3857")
    areas = sorted(f["properties"]["area_m2"] for f in features)
    # At the equator Web Mercator keeps east-west lengths and shortens north-south ones by the
    # ellipsoid's meridian curvature, a(1 - e²)/a: about 0.33 %.
    squash = 1 - pyproj.Geod(ellps="WGS84").es
    assert areas == pytest.approx([100 * 100 * squash, 600 * 100 * squash], rel=1e-3)
    # far from the equator the Mercator scale factor 1/cos(lat)² shrinks the ground area
    lat = 60.0
    _, y = projection.lnglat_to_mercator(0.0, lat)
    north = Affine(10.0, 0.0, 0.0, 0.0, -10.0, y)
    (feature,) = vector.mask_to_features(np.ones((10, 10), bool), north, "EPSG:3857")
    assert feature["properties"]["area_m2"] == pytest.approx(
        100 * 100 * math.cos(math.radians(lat)) ** 2, rel=1e-2
    )


def test_simplify_and_other_crs():
    yy, xx = np.mgrid[0:80, 0:80]
    disk = (yy - 40) ** 2 + (xx - 40) ** 2 < 30**2
    exact = vector.shapes_in_crs(disk, EQUATOR)
    simple = vector.shapes_in_crs(disk, EQUATOR, simplify=10.0)  # one pixel
    assert len(exact) == len(simple) == 1
    assert len(simple[0].exterior.coords) < len(exact[0].exterior.coords) / 3
    assert simple[0].area == pytest.approx(exact[0].area, rel=0.03)
    assert exact[0].area == pytest.approx(disk.sum() * 100)  # pixel edges, metres²
    # a UTM raster (what GeoTIFFs come in) goes to lng/lat too
    utm = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 5000000.0)
    (feature,) = vector.mask_to_features(disk, utm, pyproj.CRS("EPSG:32632"))
    lng, lat = shape(feature["geometry"]).centroid.coords[0]
    assert 8.9 < lng < 9.1 and 45.0 < lat < 45.2  # zone 32's central meridian is 9°E
    assert feature["properties"]["area_m2"] == pytest.approx(disk.sum(), rel=2e-3)


# ---- POST /infer_samgis ----------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path):
    """serve(**settings) -> a TestClient of a started app on this test's data dir."""
    clients = []

    def make(**settings) -> TestClient:
        data = tmp_path / f"data{len(clients)}"
        app = create_app(ServerSettings(data_dir=data, pre_encode=False, **settings))
        client = TestClient(app, base_url=LOCAL_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(serve, tiles):
    return serve(tile_url=tiles.template("ok"))


def samgis_request(*prompts: dict, **fields) -> dict:
    return {"bbox": SCENE.bbox(), "zoom": SCENE.zoom, "prompt": list(prompts), **fields}


def click(name: str, label: int = 1, id: int | None = 1) -> dict:
    lng, lat = SCENE.inside(name)
    return {"id": id, "type": "point", "data": {"lat": lat, "lng": lng}, "label": label}


def rectangle(name: str, id: int, margin: float = 8) -> dict:
    s = SCENE.shapes[name]
    half_w = (s.size if s.kind != "disk" else 2 * s.size) / 2 + margin
    half_h = (s.size2 if s.kind == "rect" else s.size if s.kind == "ring" else 2 * s.size) / 2
    west, south = SCENE.lnglat(s.dx - half_w, s.dy - half_h - margin)
    east, north = SCENE.lnglat(s.dx + half_w, s.dy + half_h + margin)
    data = {"ne": {"lat": north, "lng": east}, "sw": {"lat": south, "lng": west}}
    return {"id": id, "type": "rectangle", "data": data}


@pytest.mark.parametrize("name", ["rect", "disk"])
def test_click_inside_a_shape_outlines_it(client, name):
    answer = client.post("/infer_samgis", json=samgis_request(click(name, id=7)))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert RESPONSE_KEYS <= set(body) and body["n_predictions"] == 1
    features = body["geojson"]["features"]
    assert body["geojson"]["type"] == "FeatureCollection"
    assert body["n_shapes_geojson"] == len(features) >= 1
    truth = SCENE.polygon(name)
    lng, lat = SCENE.inside(name)
    hit = [shape(f["geometry"]) for f in features if shape(f["geometry"]).contains(Point(lng, lat))]
    assert len(hit) == 1, "one polygon holds the click"
    polygon = hit[0]
    # around the shape, at the right lat/lng, and no polygon spills onto the background
    assert polygon.intersection(truth).area / truth.area > 0.8
    for feature in features:
        outside = shape(feature["geometry"]).difference(truth.buffer(_degrees(2))).area
        assert outside < 0.02 * truth.area
        props = feature["properties"]
        assert props["prompt_ids"] == [7] and 0 < props["score"] <= 1.5
        assert props["area_m2"] > 0


def test_polygon_vertices_lie_on_pixel_edges(client):
    """The GeoJSON's lng/lat, back through pyproj to world pixels, are whole pixels of the
    extent's grid: nothing is shifted by half a pixel or resampled on the way."""
    body = client.post("/infer_samgis", json=samgis_request(click("rect"), debug=True)).json()
    to_3857 = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    res = metres_per_pixel(SCENE.zoom)
    for feature in body["geojson"]["features"]:
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        x, y = to_3857.transform(ring[:, 0], ring[:, 1])
        px, py = (x + math.pi * 6378137) / res, (math.pi * 6378137 - y) / res
        assert np.abs(px - np.round(px)).max() < 1e-5 and np.abs(py - np.round(py)).max() < 1e-5
    debug = body["debug"]
    assert debug["zoom"] == SCENE.zoom and debug["crs"] == "EPSG:3857" and debug["tiles"] == 9


def test_embedding_cached_per_extent(client, tiles):
    before = tiles.count("ok")
    first = client.post("/infer_samgis", json=samgis_request(click("rect"))).json()
    assert first["cached_embedding"] is False and tiles.count("ok") == before + 9
    second = client.post("/infer_samgis", json=samgis_request(click("disk"), click("rect", 0, 2)))
    assert second.json()["cached_embedding"] is True
    assert tiles.count("ok") == before + 9  # a cached extent needs no tiles at all
    moved = samgis_request(click("rect"))
    moved["zoom"] = SCENE.zoom - 1
    assert client.post("/infer_samgis", json=moved).json()["cached_embedding"] is False


def test_each_rectangle_is_one_decoder_call(client, monkeypatch):
    calls = []
    predict = SamPredictor.predict

    def counted(self, point_coords=None, point_labels=None, box=None, *args, **kwargs):
        calls.append(None if box is None else np.asarray(box).shape)
        return predict(self, point_coords, point_labels, box, *args, **kwargs)

    monkeypatch.setattr(SamPredictor, "predict", counted)
    body = client.post(
        "/infer_samgis", json=samgis_request(rectangle("rect", 10), rectangle("disk", 11))
    ).json()
    assert calls == [(4,), (4,)]  # one box per call, never several boxes in one
    assert body["n_predictions"] == 2
    by_id = {}
    for feature in body["geojson"]["features"]:
        (prompt_id,) = feature["properties"]["prompt_ids"]
        by_id.setdefault(prompt_id, []).append(shape(feature["geometry"]))
    for prompt_id, name in ((10, "rect"), (11, "disk")):
        truth = SCENE.polygon(name)
        best = max(by_id[prompt_id], key=lambda p: p.intersection(truth).area)
        assert best.intersection(truth).area / truth.area > 0.7
    # points go with every rectangle
    calls.clear()
    body = client.post(
        "/infer_samgis",
        json=samgis_request(rectangle("rect", 10), rectangle("disk", 11), click("rect", 1, 3)),
    ).json()
    assert len(calls) == 2 and body["n_predictions"] == 2
    assert sorted(f["properties"]["prompt_ids"][0] for f in body["geojson"]["features"])[0] == 3


def test_prompts_without_ids_are_numbered_by_position(client):
    body = client.post(
        "/infer_samgis", json=samgis_request(click("disk", id=None), click("rect", 0, None))
    ).json()
    assert all(f["properties"]["prompt_ids"] == [0, 1] for f in body["geojson"]["features"])


# ---- the endpoint's refusals ---------------------------------------------------------------


def _bad(client, body: dict, status: int, *needles: str) -> None:
    answer = client.post("/infer_samgis", json=body)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    for needle in needles:
        assert needle in detail, detail


def test_too_many_tiles_names_the_limit(serve, tiles):
    client = serve(tile_url=tiles.template("ok"), limits=Limits(tiles=4))
    before = len(tiles.requests)
    _bad(client, samgis_request(click("rect")), 422, "needs 9 map tiles", "limit of 4 tiles")
    assert len(tiles.requests) == before  # refused before fetching anything


def test_invalid_requests_say_why(client):
    inverted = samgis_request(click("rect"))
    inverted["bbox"] = {"ne": inverted["bbox"]["sw"], "sw": inverted["bbox"]["ne"]}
    _bad(client, inverted, 422, "bbox", "inverted")
    far = samgis_request(click("rect"))
    far["prompt"][0]["data"] = {"lat": 46.0, "lng": 7.0}
    _bad(client, far, 422, "prompt 0", "outside the bbox")
    wrong_lat = samgis_request(click("rect"))
    wrong_lat["bbox"]["ne"]["lat"] = 95.0
    _bad(client, wrong_lat, 422, "latitude 95.0 is outside")
    wrong_lng = samgis_request(click("rect"))
    wrong_lng["prompt"][0]["data"]["lng"] = -200
    _bad(client, wrong_lng, 422, "longitude -200")
    _bad(client, samgis_request(), 422, "prompt list is empty")
    _bad(client, samgis_request(click("rect"), zoom=15.5), 422, "zoom must be a whole number")
    no_label = samgis_request(click("rect"))
    del no_label["prompt"][0]["label"]
    _bad(client, no_label, 422, "label")
    _bad(client, samgis_request({"type": "circle", "data": {}}), 422, "prompt.0")
    box = samgis_request(rectangle("rect", 1))
    box["prompt"][0]["data"]["ne"], box["prompt"][0]["data"]["sw"] = (
        box["prompt"][0]["data"]["sw"],
        box["prompt"][0]["data"]["ne"],
    )
    _bad(client, box, 422, "inverted")
    # the server serves on
    assert client.post("/infer_samgis", json=samgis_request(click("rect"))).status_code == 200


def test_tile_failures_are_502_naming_the_url_and_the_server_serves_on(serve, tiles):
    for mode, needle in (("fail", "answered 500"), ("slow", "timed out"), ("text", "not an image")):
        client = serve(tile_url=tiles.template(mode), tile_timeout=0.3)
        answer = client.post("/infer_samgis", json=samgis_request(click("rect")))
        assert answer.status_code == 502, answer.text
        detail = answer.json()["detail"]
        assert needle in detail and f"http://127.0.0.1:{tiles.port}/{mode}/16/" in detail
        assert client.get("/health").status_code == 200
    ok = serve(tile_url=tiles.template("ok"))
    assert ok.post("/infer_samgis", json=samgis_request(click("rect"))).status_code == 200


def test_sources_without_a_tile_url(serve):
    client = serve()  # no --tile-url: names resolve to real providers (nothing fetched here)
    _bad(client, samgis_request(click("rect"), source_type="NoSuchMaps"), 422, "NoSuchMaps")
    template = samgis_request(click("rect"), source_type="http://10.0.0.1/{z}/{x}/{y}.png")
    _bad(client, template, 422, "provider name")  # clients cannot make the server fetch URLs
    _bad(client, samgis_request(click("rect"), zoom=21), 422, "zoom 0..19, not 21")
    source = client.get("/api/geo/source", params={"name": "OpenStreetMap.Mapnik"}).json()
    assert source["url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert source["max_zoom"] == 19 and source["tile_limit"] == 100 and not source["fixed"]


def test_tile_url_overrides_the_source_and_the_token_is_required(serve, tiles):
    client = serve(tile_url=tiles.template("ok"), token="s3cret")
    assert client.post("/infer_samgis", json=samgis_request(click("rect"))).status_code == 401
    assert client.get("/api/geo/source").status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    source = client.get("/api/geo/source", params={"name": "Esri.WorldImagery"}, headers=auth)
    assert source.json()["url"] == tiles.template("ok") and source.json()["fixed"]
    answer = client.post("/infer_samgis", json=samgis_request(click("rect")), headers=auth)
    assert answer.status_code == 200
    page = client.get("/map")  # the page itself is public, like the annotator's
    assert page.status_code == 200 and "map.js" in page.text


def test_settings_refuse_a_bad_tile_url(tmp_path):
    with pytest.raises(ConfigError, match=r"\{z\}, \{x\} and \{y\}"):
        ServerSettings(data_dir=tmp_path, tile_url="http://127.0.0.1:9000/tiles.png")
    text = ServerSettings(data_dir=tmp_path, tile_url="http://h/{z}/{x}/{y}.png").to_json()
    assert ServerSettings.from_json(text).tile_url == "http://h/{z}/{x}/{y}.png"


def test_serve_command_passes_tile_url(monkeypatch, tmp_path):
    import uvicorn

    from segany.cli.main import main
    from segany.server.settings import ServerSettings as Settings

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.setdefault("run", True))
    monkeypatch.setenv("SEGANY_SERVER_SETTINGS", "")
    template = "http://127.0.0.1:9000/{z}/{x}/{y}.png"
    assert main(["serve", "--data", str(tmp_path), "--tile-url", template]) == 0
    assert seen["run"] and Settings.from_environment().tile_url == template


def test_background_colour_is_never_outlined_with_a_shape(client):
    """A click on a shape gives no polygon anywhere else: sample the background far from every
    shape and check no feature covers it."""
    body = client.post("/infer_samgis", json=samgis_request(click("disk"))).json()
    assert BACKGROUND
    for dx, dy in [(-230, -220), (230, -220), (230, 220), (-230, 220), (0, 10)]:
        lng, lat = SCENE.lnglat(dx, dy)
        assert not any(
            shape(f["geometry"]).contains(Point(lng, lat)) for f in body["geojson"]["features"]
        )


def _bbox_corners(bbox: dict) -> tuple[float, float, float, float]:
    return bbox["sw"]["lng"], bbox["sw"]["lat"], bbox["ne"]["lng"], bbox["ne"]["lat"]


def _degrees(pixels: float) -> float:
    """About `pixels` scene pixels, in degrees of longitude (for buffers around true shapes)."""
    return to_lnglat(metres_per_pixel(SCENE.zoom) * pixels, 0)[0]


def test_server_without_the_geo_extra(tmp_path):
    """Without rasterio & co. the server still starts; the map routes say what to install."""
    script = f"""
import sys
sys.modules["rasterio"] = None  # as if the geo extra were not installed
from fastapi.testclient import TestClient
from segany.server.app import create_app
from segany.server.settings import ServerSettings
app = create_app(ServerSettings(data_dir={str(tmp_path)!r}, pre_encode=False))
with TestClient(app, base_url="http://127.0.0.1") as client:
    answer = client.post("/infer_samgis", json={{}})
    print(answer.status_code, answer.json()["detail"])
    print(client.get("/api/geo/source").status_code, client.get("/health").status_code)
"""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "501 maps need rasterio, which is not installed: pip install 'segany[geo]'"
    assert second == "501 200"
