"""What one map or GeoTIFF request may cost, counted before anything is allocated or read.

- Tile counts come from arithmetic (`ExtentGrid.tile_count`): the whole world at zoom 19 is
  refused without building its ~10^11 tile tuples.
- Prompts far apart on a GeoTIFF are read as one decimated window of `context` pixels a side
  (from the overviews when the file has them), and the mask's polygons land where the object
  is on the map; a window whose read would decode more than the pixel limit is refused before
  any pixel is read.
- A GeoTIFF whose header opens but whose pixels cannot be read is a `DataError` (HTTP 422, CLI
  exit 2), never a 500.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio  # noqa: E402  (segany[geo], in segany[dev]: missing, collection fails)
import shapely  # noqa: E402
import shapely.affinity  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from segany.cli.main import main  # noqa: E402
from segany.errors import DataError, PromptError  # noqa: E402
from segany.geo.errors import ExtentError  # noqa: E402
from segany.geo.geotiff import open_geotiff  # noqa: E402
from segany.geo.projection import transformer  # noqa: E402
from segany.geo.raster import Extent, extent_grid, extent_image  # noqa: E402
from segany.geo.segment import GeoPrompts, segment_geotiff  # noqa: E402
from segany.geo.tiles import TileFetcher, template_source  # noqa: E402
from segany.geo.windows import decimated_shape  # noqa: E402
from server_helpers import LOCAL_URL  # noqa: E402

UTM = "EPSG:32633"
WGS84 = "EPSG:4326"
TRANSFORM = from_origin(500_000, 5_000_000, 10, 10)  # 10 m pixels
RED = (220, 30, 30)


# ---- tiles ------------------------------------------------------------------------------------


def test_the_tile_count_is_arithmetic_and_matches_the_list():
    grid = extent_grid(Extent(7.0, 45.0, 7.05, 45.03), 15)
    assert grid.tile_count == len(grid.tiles) == 25  # 5 x 5
    world = extent_grid(Extent(-180.0, -85.0, 180.0, 85.0), 19)
    assert world.tile_count > 2**19 * 2**18  # ~2.7 * 10^11: never listed


class NeverFetch(TileFetcher):
    def fetch(self, source, tiles):
        raise AssertionError("tiles listed and fetched beyond the limit")


def test_an_extent_over_the_tile_limit_is_refused_before_its_tiles_are_listed():
    world = extent_grid(Extent(-180.0, -85.0, 180.0, 85.0), 19)
    source = template_source("http://127.0.0.1:1/{z}/{x}/{y}.png")
    with pytest.raises(ExtentError, match="over the limit of 100 tiles"):
        extent_image(world, source, NeverFetch(None, max_tiles=100))


# ---- GeoTIFF windows --------------------------------------------------------------------------


def write_scene(path: Path, width: int, height: int, rect: tuple, overviews=()) -> Path:
    """A black `width` x `height` RGB GeoTIFF (UTM 33N, 10 m pixels; tiled, DEFLATE, sparse:
    only the blocks under the red rectangle `rect` = (row0, row1, col0, col1) are written)."""
    profile = dict(
        driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=UTM,
        transform=TRANSFORM, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
        sparse_ok=True,
    )  # fmt: skip
    row0, row1, col0, col1 = rect
    paint = np.empty((3, row1 - row0, col1 - col0), np.uint8)
    paint[:] = np.array(RED, np.uint8)[:, None, None]
    with warnings.catch_warnings(), rasterio.open(path, "w", **profile) as out:
        out.write(paint, window=Window(col0, row0, col1 - col0, row1 - row0))
    if overviews:
        with rasterio.open(path, "r+") as out:
            out.build_overviews(list(overviews), rasterio.enums.Resampling.nearest)
    return path


def rect_polygon(rect: tuple, transform=TRANSFORM):
    """The rectangle (row0, row1, col0, col1) as a polygon in the raster's CRS."""
    row0, row1, col0, col1 = rect
    t = transform
    return shapely.affinity.affine_transform(
        shapely.box(col0, row0, col1, row1), [t.a, t.b, t.d, t.e, t.c, t.f]
    )


def at(col: float, row: float) -> list[float]:
    """Pixel (col, row) -> the raster's CRS (x, y)."""
    t = TRANSFORM
    return [t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f]


def in_lnglat(geometry):
    """A geometry in the raster's CRS moved to lng/lat (what GeoJSON answers hold)."""
    move = transformer(UTM, WGS84).transform
    return shapely.transform(geometry, lambda xy: np.column_stack(move(xy[:, 0], xy[:, 1])))


def iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


class RedPredictor:
    """Stands in for SamPredictor: the masks of an image are its red pixels. Records the image
    it was given and the prompts (in that image's pixels)."""

    def set_image(self, image: np.ndarray) -> None:
        self.image = image

    def predict(self, coords, labels, box, mask_input, multimask):
        self.coords, self.box = coords, box
        red = (self.image[..., 0] > 150) & (self.image[..., 1] < 100)  # (h, w)
        count = 3 if multimask is True else 4
        low_res = np.zeros((count, 256, 256), np.float32)
        return np.repeat(red[None], count, axis=0), np.linspace(0.9, 0.6, count), low_res

    def reset_image(self) -> None:
        pass


RECT = (1500, 3000, 2000, 4000)  # rows 1500..3000, columns 2000..4000 of a 6000 x 5000 scene


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("wide") / "wide.tif", 6000, 5000, RECT)


def test_prompts_far_apart_are_read_decimated_and_the_polygon_lands_in_place(wide):
    # Inside the rectangle, and two exclusions at opposite corners: the window is the raster.
    prompts = GeoPrompts(
        points=np.array([at(3000, 2250), at(20, 20), at(5980, 4980)]), labels=np.array([1, 0, 0])
    )
    predictor = RedPredictor()
    with open_geotiff(wide) as raster:
        found = segment_geotiff(raster, predictor, prompts, context=1024)
    assert predictor.image.shape == (853, 1024, 3)  # 6000 x 5000 shrunk to 1024 a side
    assert (found.window.width, found.window.height) == (6000, 5000)
    assert found.mask.shape == (853, 1024)
    # The prompts moved into the decimated image: the include point is on the red pixels.
    col, row = predictor.coords[0]
    assert predictor.image[int(row), int(col), 0] > 150
    assert predictor.coords[2] == pytest.approx([5980 * 1024 / 6000, 4980 * 853 / 5000], abs=1e-6)
    (polygon,) = found.polygons()
    assert iou(polygon, rect_polygon(RECT)) > 0.99
    assert polygon.hausdorff_distance(rect_polygon(RECT)) <= 2 * 6 * 10  # 2 read pixels, m


def test_prompts_close_together_are_read_at_full_resolution(wide):
    prompts = GeoPrompts(points=np.array([at(2100, 1600)]), labels=np.array([1]))
    predictor = RedPredictor()
    with open_geotiff(wide) as raster:
        found = segment_geotiff(raster, predictor, prompts, context=1024)
    assert predictor.image.shape == (1024, 1024, 3)
    assert found.transform == raster.window_transform(found.window)
    (polygon,) = found.polygons()
    w = found.window
    seen = rect_polygon((w.row_off, w.row_off + w.height, w.col_off, w.col_off + w.width))
    inside = rect_polygon(RECT).intersection(seen)  # the part of the rectangle in the window
    assert iou(polygon, inside) > 0.999


def test_decimated_shape_keeps_the_aspect_within_the_side():
    assert decimated_shape(500, 400, 1024) == (400, 500)
    assert decimated_shape(6000, 5000, 1024) == (853, 1024)
    assert decimated_shape(100_000, 10, 1024) == (1, 1024)


def test_a_window_over_the_pixel_limit_is_refused_before_any_read(wide, monkeypatch):
    prompts = GeoPrompts(points=np.array([at(20, 20), at(5980, 4980)]), labels=np.array([1, 0]))
    with open_geotiff(wide, max_pixels=10_000_000) as raster:

        def no_read(*args, **kwargs):
            raise AssertionError("pixels read beyond the limit")

        monkeypatch.setattr(raster.dataset.__class__, "read", no_read, raising=False)
        monkeypatch.setattr(raster.dataset.__class__, "read_masks", no_read, raising=False)
        with pytest.raises(PromptError, match=r"30,000,000 pixels, over the limit of 10,000,000"):
            segment_geotiff(raster, RedPredictor(), prompts, context=1024)


@pytest.fixture(scope="module")
def with_overviews(tmp_path_factory) -> tuple[Path, tuple]:
    rect = (6656, 9728, 6144, 10240)  # 3072 x 4096 px in the middle
    folder = tmp_path_factory.mktemp("overviews")
    return write_scene(folder / "ovr.tif", 16384, 16384, rect, overviews=(4, 16)), rect


def test_overviews_serve_a_decimated_read_within_the_limit(with_overviews):
    path, rect = with_overviews
    whole = Window(0, 0, 16384, 16384)
    with open_geotiff(path, max_pixels=2_000_000) as raster:
        assert raster.overview_factor(16.0) == 16 and raster.overview_factor(15.9) == 4
        assert raster.decoded_pixels(whole, (1024, 1024)) == 1024 * 1024
        assert raster.decoded_pixels(whole, (2048, 2048)) == 4096 * 4096  # from the 4x level
        prompts = GeoPrompts(
            points=np.array([at(8192, 8192), at(10, 10), at(16370, 16370)]),
            labels=np.array([1, 0, 0]),
        )
        predictor = RedPredictor()
        found = segment_geotiff(raster, predictor, prompts, context=1024)
    assert predictor.image.shape == (1024, 1024, 3)
    (polygon,) = found.polygons()
    assert iou(polygon, rect_polygon(rect)) > 0.99


def test_the_stretch_of_a_raster_too_large_to_sample_comes_from_the_window(tmp_path):
    profile = dict(
        driver="GTiff", width=50_000, height=50_000, count=1, dtype="uint16", crs=UTM,
        transform=TRANSFORM, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
        sparse_ok=True,
    )  # fmt: skip
    path = tmp_path / "grey16.tif"
    with rasterio.open(path, "w", **profile) as out:
        values = np.tile(np.arange(1000, 1512, dtype=np.uint16), (512, 1))[None]
        out.write(values, window=Window(1024, 1024, 512, 512))
    with open_geotiff(path, max_pixels=5_000_000) as raster:
        assert isinstance(raster.ranges, str)  # not sampled when opened
        rgb, valid = raster.read(Window(1024, 1024, 512, 512))
    low, high = raster.ranges[0]
    assert 1000 <= low < high <= 1511
    assert rgb[:, 0].max() < 10 and rgb[:, -1].min() > 245 and valid.all()


# ---- a GeoTIFF damaged after its header -------------------------------------------------------


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """A tiled DEFLATE GeoTIFF whose header and tile index are fine and whose first tile's
    compressed bytes are garbage (as a truncated download or a bad disk leaves it)."""
    path = tmp_path_factory.mktemp("damaged") / "damaged.tif"
    noise = np.random.default_rng(0).integers(0, 255, (3, 512, 512), dtype=np.uint8)
    profile = dict(
        driver="GTiff", width=512, height=512, count=3, dtype="uint8", crs=UTM,
        transform=TRANSFORM, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as out:
        out.write(noise)
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(dataset.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xa5" * size)
    return path


def test_pixels_that_cannot_be_read_are_a_data_error(damaged):
    prompts = GeoPrompts(points=np.array([at(100, 100)]), labels=np.array([1]))
    with open_geotiff(damaged) as raster, pytest.raises(DataError, match="cannot be read"):
        segment_geotiff(raster, RedPredictor(), prompts)


def test_the_cli_exits_2_on_a_damaged_geotiff(damaged, tmp_path, capsys):
    x, y = at(100, 100)
    out = tmp_path / "o.geojson"
    argv = ["geo", "segment", str(damaged), "--point", f"{x},{y}", "--out", str(out)]
    assert main(argv) == 2
    assert "cannot be read" in capsys.readouterr().err


# ---- through the CLI and HTTP, with the model -------------------------------------------------


def test_the_cli_segments_prompts_far_apart(wide, tmp_path, capsys):
    out = tmp_path / "far.geojson"
    argv = ["geo", "segment", str(wide), "--out", str(out)]
    for (col, row), label in (((3000, 2250), 1), ((20, 20), 0), ((5980, 4980), 0)):
        x, y = at(col, row)
        argv += ["--point", f"{x},{y},{label}"]
    assert main(argv) == 0, capsys.readouterr().err
    features = json.loads(out.read_text())["features"]
    expected = in_lnglat(rect_polygon(RECT))  # the file is in lng/lat
    best = max(iou(shapely.geometry.shape(f["geometry"]), expected) for f in features)
    assert best > 0.9


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from segany.server.app import create_app
    from segany.server.settings import ServerSettings

    data = tmp_path_factory.mktemp("server") / "data"
    app = create_app(ServerSettings(data_dir=data, pre_encode=False))
    with TestClient(app, base_url=LOCAL_URL) as client:
        yield client


def post_segment(client, path: Path, points: list) -> object:
    return client.post(
        "/api/geo/segment",
        files={"file": (path.name, path.read_bytes(), "image/tiff")},
        data={"prompts": json.dumps({"points": points})},
    )


def test_http_prompts_at_opposite_corners_of_a_raster_with_overviews(client, with_overviews):
    path, rect = with_overviews
    points = [[*at(8192, 8192), 1], [*at(10, 10), 0], [*at(16370, 16370), 0]]
    response = post_segment(client, path, points)
    assert response.status_code == 200, response.text
    expected = in_lnglat(rect_polygon(rect))
    polygons = [shapely.geometry.shape(f["geometry"]) for f in response.json()["features"]]
    assert max(iou(p, expected) for p in polygons) > 0.9


def test_http_damaged_geotiff_is_422(client, damaged):
    response = post_segment(client, damaged, [[*at(100, 100), 1]])
    assert response.status_code == 422, response.text
    assert "cannot be read" in response.json()["detail"]
