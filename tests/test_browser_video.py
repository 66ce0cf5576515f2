"""The annotator's video mode in Debian's Chromium (Playwright) against a real `segany serve`
with the default model (segany-tiny-v2) and its tracker: upload a tiny video, prompt an object
on frame 0, propagate forward, step to a later frame with the keys, correct it with a click
(propagation resumes from it by itself), export DAVIS PNGs and read them back. Screenshots go
to the test's tmp folder and to /tmp/screens/video-mode.png, for people to look at.

Needs: pip install playwright; apt-get install -y chromium (never `playwright install`).
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser_helpers import VIEWPORT, Missing, chromium_or_missing, segany_server
from conftest import unused_local_port
from sequence_helpers import decode, iou, square_frames, square_mask, write_mp4

pytestmark = pytest.mark.browser

FRAMES = 6
SET_USER = "try { localStorage.setItem('segany.user', 'tester'); } catch (e) {}"
SCREENS = Path("/tmp/screens")


@pytest.fixture(scope="module")
def browser():
    yield from chromium_or_missing()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve-video")
    with segany_server(data, unused_local_port(), "--no-pre-encode") as base:
        yield base


@pytest.fixture
def page(browser, request):
    """The video page, named "tester"; fails the test on any uncaught JavaScript error."""
    if isinstance(browser, Missing):
        yield browser
        return
    server = request.getfixturevalue("server")
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script(SET_USER)
    page = context.new_page()
    crashes = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    page.goto(f"{server}/static/video.html")
    yield page
    context.close()
    assert not crashes, f"uncaught errors in the page: {crashes}"


def video_state(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.seganyVideo))")


def wait_video(page, condition: str, timeout_s: float = 60) -> None:
    """Wait until `condition`, a JS expression over `s` (window.seganyVideo), holds."""
    page.wait_for_function(
        f"() => {{ const s = window.seganyVideo; return Boolean(s && ({condition})); }}",
        timeout=timeout_s * 1000,
    )


def click_frame(page, x: float, y: float, **options) -> None:
    """Click frame pixel (x, y) through the viewer's transform."""
    view = video_state(page)["view"]
    box = page.get_by_test_id("video-canvas").bounding_box()
    left = box["x"] + view["tx"] + x * view["scale"]
    top = box["y"] + view["ty"] + y * view["scale"]
    page.mouse.click(left, top, **options)


def mask_on_screen(page, object_id: int = 1) -> np.ndarray:
    return decode(video_state(page)["maskRles"][str(object_id)])


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def api_get(base: str, path: str):
    with urllib.request.urlopen(f"{base}{path}", timeout=30) as response:
        return json.loads(response.read())


def test_prompt_propagate_correct_and_export_a_video(page, server, tmp_path):
    video = write_mp4(tmp_path / "square.mp4", square_frames(FRAMES))
    page.get_by_test_id("sequence-upload").set_input_files(str(video))
    wait_video(page, "s.sequenceId && s.shown === 0 && s.masks === 0")
    assert video_state(page)["frameCount"] == FRAMES
    assert page.get_by_test_id("sequence-item").count() == 1

    # One click on the square on frame 0: object 1 is added and its mask shown.
    click_frame(page, 35, 55)
    wait_video(page, "!s.predicting && s.masks === 1")
    state = video_state(page)
    assert state["objects"] == [1] and state["selectedObject"] == 1
    assert iou(mask_on_screen(page), square_mask(0)) > 0.7

    page.get_by_test_id("propagate-forward").click()
    wait_video(page, "s.job && s.job.state === 'done'", timeout_s=240)
    assert video_state(page)["job"]["done_frames"] == FRAMES
    wait_video(page, "s.timeline.length === 1 && s.timeline[0].ranges.length === 1")
    assert video_state(page)["timeline"][0]["ranges"] == [[0, FRAMES - 1]]

    # The keys step through the frames; every frame shows its tracked mask.
    canvas = page.get_by_test_id("video-canvas")
    canvas.focus()
    for key, frame in (("ArrowRight", 1), (".", 2), ("ArrowRight", 3), (",", 2), ("End", 5)):
        page.keyboard.press(key)
        wait_video(page, f"s.frame === {frame} && s.shown === {frame} && s.masks === 1")
    page.keyboard.press("Home")
    wait_video(page, "s.shown === 0")
    page.keyboard.press("Shift+ArrowRight")  # ten frames: clamped at the last
    wait_video(page, f"s.shown === {FRAMES - 1}")
    page.get_by_test_id("frame-slider").fill("3")
    wait_video(page, "s.shown === 3 && s.masks === 1")
    assert iou(mask_on_screen(page), square_mask(3)) > 0.5
    shoot(page, tmp_path, "tracked-frame-3")

    # A correction on frame 3 (one more include click on the square): propagation resumes
    # from frame 3 on its own, forward, and the corrected frame is a prompted one.
    first_job = video_state(page)["job"]["id"]
    click_frame(page, 20 + 8 * 3 + 25, 62)
    wait_video(page, "!s.predicting")
    wait_video(page, f"s.job && s.job.id !== '{first_job}' && s.job.state === 'done'", 240)
    assert video_state(page)["job"]["done_frames"] == FRAMES - 3
    sequence_id = video_state(page)["sequenceId"]
    timeline = api_get(server, f"/api/sequences/{sequence_id}/timeline")
    assert timeline["objects"][0]["prompted"] == [0, 3]
    assert iou(mask_on_screen(page), square_mask(3)) > 0.7
    screen = shoot(page, tmp_path, "video-mode")
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screen, SCREENS / "video-mode.png")

    # Export DAVIS: one palette PNG per frame whose pixels are the object ids.
    page.get_by_test_id("video-export-format").select_option("davis")
    with page.expect_download() as download_info:
        page.get_by_test_id("video-export-button").click()
    archive = tmp_path / "davis.zip"
    download_info.value.save_as(str(archive))
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(zipped.namelist())
        assert names == [f"{i:05d}.png" for i in range(FRAMES)]
        for frame, name in enumerate(names):
            picture = Image.open(io.BytesIO(zipped.read(name)))
            assert picture.mode == "P"
            labels = np.asarray(picture)
            assert set(np.unique(labels)) <= {0, 1}
            assert iou(labels == 1, square_mask(frame)) > 0.5, frame
    # Objects: add one (selected at once), rename it, give the first one a category.
    page.get_by_test_id("add-object").click()
    wait_video(page, "s.objects.length === 2 && s.selectedObject === 2")
    page.locator("[data-testid=object-item][data-object-id='2'] .name").dblclick()
    page.get_by_test_id("object-name-input").fill("ball")
    page.keyboard.press("Enter")
    categories = api_get(server, "/api/categories")
    first = page.locator("[data-testid=object-item][data-object-id='1']")
    first.get_by_test_id("object-category").select_option(str(categories[0]["id"]))
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=object-item] .name')]"
        ".some(n => n.textContent === 'ball')"
    )
    objects = api_get(server, f"/api/sequences/{sequence_id}/objects")
    assert [o["name"] for o in objects] == ["object 1", "ball"]
    assert objects[0]["category_id"] == categories[0]["id"]
    assert video_state(page)["errors"] == 0


def test_the_images_page_links_to_the_video_page(page, server):
    page.goto(server)
    page.get_by_test_id("video-link").click()
    page.wait_for_url("**/static/video.html")
    wait_video(page, "s.frameCount >= 0")
    page.get_by_test_id("images-link").click()
    page.wait_for_url(f"{server}/")


def test_cancel_stops_a_propagation_from_the_page(page, tmp_path):
    video = write_mp4(tmp_path / "long.mp4", square_frames(40))
    page.get_by_test_id("sequence-upload").set_input_files(str(video))
    wait_video(page, "s.frameCount === 40 && s.shown === 0 && s.masks === 0")
    click_frame(page, 35, 55)
    wait_video(page, "!s.predicting && s.masks === 1")
    page.get_by_test_id("propagate-forward").click()
    wait_video(page, "s.job && s.job.state === 'running' && s.job.done_frames >= 1", 120)
    assert page.get_by_test_id("propagate-forward").is_disabled()
    page.get_by_test_id("propagate-cancel").click()
    wait_video(page, "s.job && s.job.state === 'cancelled'", 60)
    job = video_state(page)["job"]
    assert 1 <= job["done_frames"] < 40
    assert page.get_by_test_id("propagate-cancel").is_hidden()
    assert page.get_by_test_id("propagate-forward").is_enabled()
    wait_video(page, "s.timeline.length && s.timeline[0].ranges[0][1] < 40")
    assert "cancelled" in page.get_by_test_id("propagate-progress").inner_text()


def test_a_volume_shows_slices_and_offers_its_label_volume(page, tmp_path):
    import nibabel

    voxels = np.full((64, 48, 5), 100, dtype=np.int16)
    voxels[20:40, 10:30, 1:4] = 900
    path = tmp_path / "scan.nii.gz"
    nibabel.save(nibabel.Nifti1Image(voxels, np.eye(4)), str(path))
    page.get_by_test_id("sequence-upload").set_input_files(str(path))
    wait_video(page, "s.frameCount === 5 && s.shown === 0")
    page.keyboard.press("End")
    wait_video(page, "s.shown === 4")
    assert page.get_by_test_id("frame-info").inner_text() == "slice 4 of 0–4"
    option = page.locator("[data-testid=video-export-format] option[value=volume]")
    assert option.evaluate("o => !o.hidden")
