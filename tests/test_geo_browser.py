"""The map page of `segany serve` (/map), driven in Debian's Chromium by Playwright, against a
real server whose tiles come from a local tile server (`--tile-url`) drawing known shapes at
known places: a click on a shape draws a polygon around it, a dragged rectangle too, the
GeoJSON downloads. Screenshots land in test-artifacts/ for people to look at.

Needs: pip install playwright; apt-get install -y chromium (never `playwright install`).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio  # noqa: E402,F401  (segany[geo], in segany[dev]: missing, collection fails)
from PIL import Image
from shapely.geometry import Point, shape  # noqa: E402

from browser_helpers import (
    VIEWPORT,
    Missing,
    chromium_or_missing,  # noqa: E402
    screenshot,
    segany_server,
)
from conftest import unused_local_port  # noqa: E402
from geo_helpers import BACKGROUND, Scene, TileServer  # noqa: E402

pytestmark = pytest.mark.browser

SCENE = Scene()


@pytest.fixture(scope="module")
def browser():
    """Chromium, or a stand-in that fails each test with what to install."""
    yield from chromium_or_missing()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`segany serve --tile-url` on the local tile server (no pre-encoding: the demo images
    are not used here)."""
    with TileServer(SCENE) as tiles:
        data = tmp_path_factory.mktemp("serve-map")
        extra = ("--tile-url", tiles.template("ok"), "--no-pre-encode")
        with segany_server(data, unused_local_port(), *extra) as base:
            yield base


@pytest.fixture
def page(browser, request):
    """The map page centred on the scene at its zoom, tiles loaded; fails the test on any
    uncaught JavaScript error or error message shown."""
    if isinstance(browser, Missing):
        yield browser
        return
    server = request.getfixturevalue("server")
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    crashes = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    page.goto(f"{server}/map?lat={SCENE.lat}&lng={SCENE.lng}&zoom={SCENE.zoom}")
    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=60_000)
    page.wait_for_function("() => window.seganyMap.view.tilesLoaded()", timeout=60_000)
    yield page
    errors = page.get_by_test_id("message-error").all_inner_texts()
    context.close()
    assert not crashes, f"uncaught errors in the page: {crashes}"
    assert not errors, f"errors shown on the page: {errors}"


def on_screen(page, lng: float, lat: float) -> tuple[float, float]:
    """Page coordinates of (lng, lat), through the map's own view."""
    x, y = page.evaluate(f"() => window.seganyMap.view.lngLatToScreen({lng}, {lat})")
    box = page.get_by_test_id("map").bounding_box()
    return box["x"] + x, box["y"] + y


def wait_answers(page, count: int) -> dict:
    page.wait_for_function(f"() => window.seganyMap.requests >= {count}", timeout=120_000)
    return page.evaluate("() => window.seganyMap.answer")


def pixel(page, x: float, y: float) -> np.ndarray:
    """The page's RGB at page point (x, y), from a screenshot."""
    image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    ratio = image.shape[1] / VIEWPORT["width"]
    return image[int(y * ratio), int(x * ratio)].astype(int)


def test_click_on_a_shape_draws_its_polygon(page, tmp_path):
    lng, lat = SCENE.inside("rect")
    x, y = on_screen(page, lng, lat)
    # the tiles are drawn where the map says: the shape's colour under its lat/lng
    assert np.abs(pixel(page, x, y) - SCENE.shapes["rect"].color).max() <= 2
    far = on_screen(page, *SCENE.lnglat(0, 220))
    assert np.abs(pixel(page, *far) - BACKGROUND).max() <= 2

    page.mouse.click(x, y)
    answer = wait_answers(page, 1)
    assert answer["n_predictions"] == 1 and answer["n_shapes_geojson"] >= 1
    polygons = [shape(f["geometry"]) for f in answer["geojson"]["features"]]
    assert any(p.contains(Point(lng, lat)) for p in polygons)
    truth = SCENE.polygon("rect")
    best = max(polygons, key=lambda p: p.intersection(truth).area)
    assert best.intersection(truth).area / truth.area > 0.8
    drawn = page.get_by_test_id("polygon")
    assert drawn.count() == answer["n_shapes_geojson"]
    assert page.get_by_test_id("prompt-point").count() == 1
    # the polygon is drawn over the shape (tinted) and not over the background
    assert np.abs(pixel(page, x + 20, y + 10) - SCENE.shapes["rect"].color).max() > 20
    assert np.abs(pixel(page, *far) - BACKGROUND).max() <= 2
    assert "polygons" in page.get_by_test_id("map-status").inner_text()
    assert page.get_by_test_id("source-select").is_disabled()  # --tile-url: one layer
    screenshot(page, "map-click")

    with page.expect_download() as download:
        page.get_by_test_id("download-button").click()
    saved = tmp_path / "map.geojson"
    download.value.save_as(saved)
    assert download.value.suggested_filename.endswith(".geojson")
    assert json.loads(saved.read_text()) == answer["geojson"]


def test_drag_draws_a_rectangle_prompt(page):
    disk = SCENE.shapes["disk"]
    x0, y0 = on_screen(page, *SCENE.lnglat(disk.dx - 50, disk.dy + 50))
    x1, y1 = on_screen(page, *SCENE.lnglat(disk.dx + 50, disk.dy - 50))
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()
    answer = wait_answers(page, 1)
    prompts = page.evaluate("() => window.seganyMap.prompts")
    assert [p["type"] for p in prompts] == ["rectangle"]
    assert page.get_by_test_id("prompt-rectangle").count() == 1
    centre = Point(*SCENE.inside("disk"))
    assert any(shape(f["geometry"]).contains(centre) for f in answer["geojson"]["features"])
    screenshot(page, "map-rectangle")
    # right click adds an exclude point; Escape clears everything
    page.mouse.click(*on_screen(page, *SCENE.inside("disk")), button="right")
    wait_answers(page, 2)
    labels = [p.get("label") for p in page.evaluate("() => window.seganyMap.prompts")]
    assert labels == [None, 0]
    page.keyboard.press("Escape")
    assert page.get_by_test_id("polygon").count() == 0
    assert page.get_by_test_id("download-button").is_disabled()


def test_wheel_zoom_and_space_pan_keep_the_view(page):
    box = page.get_by_test_id("map").bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, 200)  # zoom out one level around the cursor
    page.wait_for_function(f"() => window.seganyMap.view.zoom === {SCENE.zoom - 1}")
    assert "zoom=15" in page.url
    before = on_screen(page, SCENE.lng, SCENE.lat)
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(centre[0] + 100, centre[1] + 40, steps=5)
    page.mouse.up()
    page.keyboard.up(" ")
    after = on_screen(page, SCENE.lng, SCENE.lat)
    assert after[0] - before[0] == pytest.approx(100, abs=1)
    assert after[1] - before[1] == pytest.approx(40, abs=1)
    assert page.evaluate("() => window.seganyMap.prompts.length") == 0  # panning adds nothing
