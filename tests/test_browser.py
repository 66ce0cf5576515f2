"""The browser annotator of `segany serve`, driven in Debian's Chromium by Playwright.

The pure modules (RLE decoding against pycocotools, prompt history, request coalescing, ...)
run in Chromium without a server; the page runs against a real `segany serve --demo` in a
subprocess. Screenshots land in test-artifacts/ for people to look at.

Needs: pip install playwright; apt-get install -y chromium (never `playwright install`).
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from browser_helpers import (
    VIEWPORT,
    Missing,
    canvas_pixels,
    chromium_or_missing,
    image_to_client,
    mask_alignment,
    screenshot,
    segany_server,
    serve_static,
    state,
    wait_encoded,
    wait_state,
)
from conftest import synthetic_image, unused_local_port

pytestmark = pytest.mark.browser

DISC_CENTRE = (330, 190)  # the yellow disc of examples/sample.png, radius 100
DISC_RADIUS = 100
SET_USER = "try { localStorage.setItem('segany.user', 'tester'); } catch (e) {}"


@pytest.fixture(scope="module")
def browser():
    """Chromium, or a stand-in that fails each test with what to install."""
    yield from chromium_or_missing()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A demo project (sample.png, three scenes, three categories), pre-encoded."""
    data = tmp_path_factory.mktemp("serve")
    with segany_server(data, unused_local_port()) as base:
        wait_encoded(base)
        yield base


@pytest.fixture
def page(browser, request):
    """A fresh page on the annotator, named "tester", showing sample.png; fails the test on any
    uncaught JavaScript error."""
    if isinstance(browser, Missing):
        yield browser  # the test fails on its first use of the page
        return
    server = request.getfixturevalue("server")
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script(SET_USER)
    page = context.new_page()
    crashes = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    page.goto(server)
    open_image(page, "sample.png")
    yield page
    context.close()
    assert not crashes, f"uncaught errors in the page: {crashes}"


def open_image(page, file_name: str) -> str:
    """Click (the first image named like) `file_name` in the list, wait until it is drawn;
    returns its id."""
    item = page.get_by_test_id("image-item").filter(has_text=file_name).first
    item.click()
    image_id = item.get_attribute("data-image-id")
    wait_state(page, f"s.imageLoaded && s.imageId === {json.dumps(image_id)}")
    return image_id


def click_image(page, x: float, y: float, **options) -> None:
    page.mouse.click(*image_to_client(page, x, y), **options)


def wait_masks(page, points: int) -> dict:
    """Wait for the answer to the prompts with `points` points (3 candidates for a first click,
    4 for later edits: `segany.interactive`); returns the state."""
    candidates = 3 if points <= 1 else 4
    wait_state(page, f"s.points === {points} && s.candidates === {candidates} && !s.predicting", 60)
    return state(page)


def disc_mask(height: int = 480, width: int = 640) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = DISC_CENTRE
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < DISC_RADIUS**2


def decode(rle: dict) -> np.ndarray:
    """(H, W) bool from a COCO RLE (as the API sends it)."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def assert_aligned(page, before, after, mask) -> None:
    """Every interior sample changed inside the mask, none outside (image and mask aligned)."""
    counts = mask_alignment(page, before, after, mask)
    assert counts["inside"] > 20 and counts["outside"] > 20, counts
    assert counts["inside_changed"] == counts["inside"], counts
    assert counts["outside_changed"] == 0, counts


# ---- pure modules, no server ----------------------------------------------------------------


def rle_cases() -> list[tuple[str, np.ndarray]]:
    """Masks whose RLEs exercise the format: empty, full, first pixel set (a leading run of 0),
    runs needing several 5-bit groups, negative differences, strips, odd sizes."""
    rng = np.random.default_rng(12)
    cases = [
        ("1x1 empty", np.zeros((1, 1), bool)),
        ("1x1 full", np.ones((1, 1), bool)),
        ("3x7 random", rng.random((3, 7)) < 0.5),
        ("first pixel set", np.pad(np.ones((2, 2), bool), ((0, 3), (0, 4)))),
        ("full 480x640", np.ones((480, 640), bool)),
        ("disc 480x640", disc_mask()),
        ("noise 97x131", rng.random((97, 131)) < 0.3),
        ("1x5000 strip", np.arange(5000)[None, :] % 700 < 350),
        ("5000x1 strip", np.arange(5000)[:, None] % 3 == 0),
    ]
    big = np.zeros((1100, 1500), bool)  # runs over 2^20 pixels: five groups of 5 bits
    big[:, 900:] = True
    big[500:520, 100:110] = True  # short runs after long ones: negative differences
    cases.append(("1100x1500 long runs", big))
    return cases


def test_rle_decoder_matches_pycocotools(browser):
    page = browser.new_page()
    serve_static(page)
    cases = []
    for name, mask in rle_cases():
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        cases.append({"name": name, "rle": {"size": rle["size"], "counts": rle["counts"].decode()}})
    decoded = page.evaluate(
        """async (cases) => {
            const { decodeRle } = await import('/static/rle.js');
            return cases.map(({ rle }) => {
                const { height, width, data, area } = decodeRle(rle);
                let text = '';
                for (let i = 0; i < data.length; i += 0x8000) {
                    text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
                }
                return { height, width, area, data: btoa(text) };
            });
        }""",
        cases,
    )
    page.close()
    for (name, mask), got in zip(rle_cases(), decoded, strict=True):
        assert (got["height"], got["width"]) == mask.shape, name
        pixels = np.frombuffer(base64.b64decode(got["data"]), np.uint8).reshape(mask.shape)
        assert np.array_equal(pixels.astype(bool), mask), name
        assert got["area"] == mask.sum(), name


def test_rle_decoder_uncompressed_and_malformed(browser):
    page = browser.new_page()
    serve_static(page)
    result = page.evaluate(
        """async () => {
            const { decodeRle, decodeCounts } = await import('/static/rle.js');
            const failure = (rle) => {
                try { decodeRle(rle); return ''; } catch (e) { return e.message; }
            };
            const plain = decodeRle({ size: [2, 3], counts: [1, 2, 3] });
            return {
                plain: Array.from(plain.data),
                runs: decodeCounts('0'),
                short: failure({ size: [2, 3], counts: [1, 2] }),
                long: failure({ size: [2, 3], counts: [5, 5] }),
                truncated: failure({ size: [2, 3], counts: 'P' }),
                invalid: failure({ size: [2, 3], counts: ' ' }),
            };
        }"""
    )
    page.close()
    # 2 rows x 3 columns read down the columns: 1 background, 2 set (row 1 of column 0, row 0
    # of column 1), 3 background; the answer is row-major
    expected = mask_utils.decode(
        mask_utils.frPyObjects({"size": [2, 3], "counts": [1, 2, 3]}, 2, 3)
    )
    assert result["plain"] == [0, 1, 0, 1, 0, 0] == expected.ravel().tolist()
    assert result["runs"] == [0]
    assert "cover 3 pixels" in result["short"]
    assert "cover 10 pixels" in result["long"]
    assert "ends inside a number" in result["truncated"]
    assert "invalid character" in result["invalid"]


def test_pure_modules(browser):
    """Prompt history (undo, redo, the "previous" token), request coalescing, file names of
    downloads, error texts, colours, user names."""
    page = browser.new_page()
    serve_static(page)
    failures = page.evaluate(
        """async () => {
            const failures = [];
            const check = (what, got, want) => {
                const a = JSON.stringify(got), b = JSON.stringify(want);
                if (a !== b) failures.push(`${what}: got ${a}, want ${b}`);
            };
            const { PromptHistory, INCLUDE, EXCLUDE } = await import('/static/prompts.js');
            const h = new PromptHistory();
            check('empty at first', h.empty, true);
            h.addPoint(10.123, 20.456, INCLUDE);
            h.current.answer = { previous: 'AAAAAAAAAAAAAAAAAAAAAAAA', masks: [] };
            h.current.chosen = 2;
            h.addPoint(30, 40, EXCLUDE);
            check('body', h.requestBody(), { points: [[10.12, 20.46, 1], [30, 40, 0]], box: null,
                multimask: true, previous: 'AAAAAAAAAAAAAAAAAAAAAAAA.2', polygons: false });
            check('body without previous', h.requestBody(false).previous, null);
            h.setBox([1, 2, 3, 4]);
            check('previous skips unanswered', h.previousToken(), 'AAAAAAAAAAAAAAAAAAAAAAAA.2');
            h.undo(); h.undo();
            check('undo twice', h.current.points.length, 1);
            h.redo();
            check('redo', h.current.points.length, 2);
            h.addPoint(5, 5, INCLUDE);
            check('an edit drops the redo', h.canRedo, false);
            h.clear();
            check('clear', h.empty, true);
            h.undo();
            check('clear is undone', h.current.points.length, 3);
            h.clear(); h.addPoint(1, 1, INCLUDE);
            check('a cleared state starts afresh', h.previousToken(), null);

            const { LatestOnly } = await import('/static/latest.js');
            const ran = [], shown = [];
            let release;
            const runner = new LatestOnly(async (arg, isCurrent) => {
                ran.push(arg);
                await new Promise((r) => { release = r; });
                if (isCurrent()) shown.push(arg);
            });
            runner.request(1); runner.request(2); runner.request(3);
            await Promise.resolve();
            release(); await new Promise((r) => setTimeout(r, 0));
            release(); await new Promise((r) => setTimeout(r, 0));
            check('one in flight, then only the newest', ran, [1, 3]);
            check('stale answers dropped', shown, [3]);
            runner.request(4); await Promise.resolve(); runner.cancel();
            release(); await new Promise((r) => setTimeout(r, 0));
            check('cancelled answers dropped', shown, [3]);

            const { fileName } = await import('/static/exporter.js');
            check('filename', fileName('attachment; filename="coco.json"'), 'coco.json');
            check('filename*', fileName("attachment; filename*=UTF-8''a%20b.zip"), 'a b.zip');
            check('no path in names', fileName('attachment; filename="../x/y.zip"'), '.._x_y.zip');
            check('no header', fileName(null), '');

            const { describeDetail } = await import('/static/api.js');
            check('detail', describeDetail({ detail: 'no such image' }), 'no such image');
            const invalid = { detail: [{ loc: ['body', 'points', 0], msg: 'bad' }] };
            check('validation', describeDetail(invalid), 'points.0: bad');

            const { parseColor } = await import('/static/masklayer.js');
            check('colour', parseColor('#ff8000'), [255, 128, 0]);
            check('short colour', parseColor('#f80'), [255, 136, 0]);
            check('bad colour', parseColor('red'), [30, 144, 255]);

            const { nameProblem } = await import('/static/session.js');
            check('a name', nameProblem('Ada L.'), '');
            check('no name', nameProblem('  ') !== '', true);
            check('not ASCII', nameProblem('Zoë') !== '', true);
            return failures;
        }"""
    )
    page.close()
    assert failures == []


# ---- the annotator against a real server ---------------------------------------------------


def test_annotate_with_clicks_then_auto_then_export(browser, request, tmp_path):
    """The issue's walk-through: click on the disc, see its mask, accept it with a category, run
    Auto and accept one suggestion, export COCO and find both annotations."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    server = request.getfixturevalue("server")
    page = context.new_page()
    crashes = []
    page.on("pageerror", lambda error: crashes.append(str(error)))
    page.goto(server)

    # The name is asked once, in the page.
    dialog = page.get_by_test_id("user-dialog")
    dialog.wait_for(state="visible")
    screenshot(page, "01-name-dialog")
    page.get_by_test_id("user-name").fill("alice")
    page.get_by_test_id("user-ok").click()
    dialog.wait_for(state="hidden")
    assert page.evaluate("localStorage.getItem('segany.user')") == "alice"
    assert page.get_by_test_id("user-button").inner_text().strip() == "alice"

    image_id = open_image(page, "sample.png")
    wait_state(page, "s.annotations >= 0")
    annotations_before = state(page)["annotations"]
    before = canvas_pixels(page)
    screenshot(page, "02-opened")

    # One click on the disc: three candidates, the best drawn over the disc, aligned.
    click_image(page, *DISC_CENTRE)
    st = wait_masks(page, 1)
    assert st["chosen"] == 0 and st["maskArea"] > 0
    mask = decode(st["maskRle"])
    assert mask.sum() == st["maskArea"]
    assert iou(mask, disc_mask()) > 0.6, "the click should segment the disc"
    after = canvas_pixels(page)
    assert_aligned(page, before, after, mask)
    screenshot(page, "03-mask-after-click")

    # Tab cycles the candidates.
    page.keyboard.press("Tab")
    assert state(page)["chosen"] == 1
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert state(page)["chosen"] == 0

    # A new category, chosen by its number key, then Enter accepts.
    page.get_by_test_id("category-name").fill("disc")
    page.get_by_test_id("category-add").click()
    category = page.get_by_test_id("category-item").filter(has_text="disc")
    category.wait_for()
    disc_id = int(category.get_attribute("data-category-id"))
    page.keyboard.press("1")
    assert state(page)["categoryId"] != disc_id
    position = page.get_by_test_id("category-item").all_inner_texts().index(category.inner_text())
    page.keyboard.press(str(position + 1))
    assert state(page)["categoryId"] == disc_id
    page.keyboard.press("Enter")
    wait_state(page, f"s.annotations === {annotations_before + 1} && s.candidates === 0")
    row = page.locator("[data-testid=annotation-item][data-source=manual]").last
    assert row.get_by_test_id("annotation-category").input_value() == str(disc_id)
    count = page.locator(f"[data-image-id='{image_id}'] [data-testid=image-count]")
    assert count.inner_text() == str(annotations_before + 1)
    screenshot(page, "04-accepted")

    # Semi-automatic: proposals drawn as suggestions, one accepted.
    page.get_by_test_id("auto-button").click()
    wait_state(page, "s.suggestions > 0 && !s.autoRunning", 240)
    suggestions = state(page)["suggestions"]
    screenshot(page, "05-suggestions")
    page.get_by_test_id("suggestion-accept").first.click()
    wait_state(page, f"s.annotations === {annotations_before + 2}")
    assert state(page)["suggestions"] == suggestions - 1
    page.locator("[data-testid=annotation-item][data-source=semi-auto]").first.wait_for()
    page.get_by_test_id("reject-all").click()
    wait_state(page, "s.suggestions === 0")

    # The person adds what is missing with clicks: the teal ball.
    click_image(page, 400, 390)
    wait_masks(page, 1)
    page.keyboard.press("Escape")
    wait_state(page, "s.points === 0 && s.candidates === 0")

    # Reviewed.
    page.get_by_test_id("reviewed-toggle").check()
    reviewed = page.locator(f"[data-image-id='{image_id}'] [data-testid=image-reviewed]")
    reviewed.filter(has_text="✓").wait_for()
    screenshot(page, "06-semi-auto-accepted")

    # Export COCO: both annotations, their sources, the category, the author.
    page.get_by_test_id("export-format").select_option("coco")
    with page.expect_download() as download:
        page.get_by_test_id("export-button").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.endswith(".json")
    coco = json.loads(path.read_text())
    (image,) = [i for i in coco["images"] if i["file_name"].endswith("sample.png")]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    ours = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    manual = [a for a in ours if a.get("source") == "manual"]
    semi = [a for a in ours if a.get("source") == "semi-auto"]
    assert manual and semi, [a.get("source") for a in ours]
    assert names[manual[-1]["category_id"]] == "disc"
    assert names[semi[-1]["category_id"]] == "disc"
    assert manual[-1].get("author") == "alice"
    exported = decode(manual[-1]["segmentation"])
    assert np.array_equal(exported, mask), "the export holds the mask the page showed"
    context.close()
    assert not crashes, crashes


def test_hover_preview_before_the_first_click(page):
    cx, cy = image_to_client(page, *DISC_CENTRE)
    before = canvas_pixels(page)
    page.mouse.move(cx, cy)
    wait_state(page, "s.hoverArea > 0 && s.points === 0")
    hover = decode(state(page)["hoverRle"])
    assert iou(hover, disc_mask()) > 0.6
    assert_aligned(page, before, canvas_pixels(page), hover)
    screenshot(page, "07-hover-preview")
    # Leaving the canvas hides it; a click replaces it by the prompt's masks.
    page.get_by_test_id("image-list").hover()
    wait_state(page, "s.hoverArea === 0")
    click_image(page, *DISC_CENTRE)
    wait_masks(page, 1)
    assert state(page)["hoverArea"] == 0


def test_prompts_keys_and_box(page):
    click_image(page, *DISC_CENTRE)
    wait_masks(page, 1)
    click_image(page, 150, 300, button="right")  # exclude the red block
    wait_masks(page, 2)
    page.keyboard.down("Alt")
    click_image(page, 500, 300)  # Alt-click: exclude the triangle
    page.keyboard.up("Alt")
    first = wait_masks(page, 3)
    shown = decode(first["maskRle"])  # the best candidate honours all three clicks
    assert shown[190, 330] and not shown[300, 150] and not shown[300, 500]
    page.keyboard.press("z")
    assert state(page)["points"] == 2
    wait_masks(page, 2)  # the earlier answer is kept: no new request needed
    page.keyboard.press("Shift+Z")
    redone = wait_masks(page, 3)
    assert redone["maskRle"] == first["maskRle"]
    page.keyboard.press("Escape")
    wait_state(page, "s.points === 0 && s.candidates === 0")
    page.keyboard.press("z")  # clearing is an edit like any other
    wait_masks(page, 3)
    page.keyboard.press("Escape")

    # A box: drag with the left button.
    page.mouse.move(*image_to_client(page, 222, 82))
    page.mouse.down()
    page.mouse.move(*image_to_client(page, 330, 190), steps=4)
    page.mouse.move(*image_to_client(page, 438, 298), steps=4)
    page.mouse.up()
    wait_state(page, "s.box !== null && s.candidates === 3 && !s.predicting")
    st = state(page)
    assert st["points"] == 0
    assert [round(v) for v in st["box"]] == [222, 82, 438, 298]
    box_mask = decode(st["maskRle"])
    assert box_mask[190, 330], "the box around the disc covers its centre"
    screenshot(page, "08-box-prompt")


def test_zoom_and_pan_keep_masks_aligned(page):
    click_image(page, *DISC_CENTRE)
    st = wait_masks(page, 1)
    mask = decode(st["maskRle"])
    # Wheel zoom around the cursor: the image point under it stays there. (Whole pixels: mouse
    # events carry integer client coordinates.)
    cursor = tuple(round(v) for v in image_to_client(page, 300, 160))
    page.mouse.move(*cursor)
    view = st["view"]
    fit_scale = view["scale"]
    box = page.get_by_test_id("canvas").bounding_box()
    under = [(cursor[0] - box["x"] - view["tx"]) / view["scale"]]
    under.append((cursor[1] - box["y"] - view["ty"]) / view["scale"])
    page.mouse.wheel(0, -600)
    wait_state(page, f"s.view.scale > {view['scale'] * 2}")
    after = image_to_client(page, *under)
    assert abs(after[0] - cursor[0]) < 0.01 and abs(after[1] - cursor[1]) < 0.01
    # The mask at this zoom, against the same view without it.
    page.keyboard.press("Escape")
    wait_state(page, "s.candidates === 0")
    page.mouse.move(5, 5)  # off the canvas: no hover preview
    without = canvas_pixels(page)
    page.keyboard.press("z")
    wait_masks(page, 1)
    assert_aligned(page, without, canvas_pixels(page), mask)
    screenshot(page, "09-zoomed")

    # Pan with the middle button, then with Space + drag; no prompt is placed.
    view = state(page)["view"]
    start = tuple(round(v) for v in image_to_client(page, 330, 190))
    page.mouse.move(*start)
    page.mouse.down(button="middle")
    page.mouse.move(start[0] - 120, start[1] - 60, steps=5)
    page.mouse.up(button="middle")
    moved = state(page)["view"]
    assert abs(moved["tx"] - view["tx"] + 120) < 1 and abs(moved["ty"] - view["ty"] + 60) < 1
    page.keyboard.down("Space")
    page.mouse.down()
    page.mouse.move(start[0] - 60, start[1] - 30, steps=5)
    page.mouse.up()
    page.keyboard.up("Space")
    panned = state(page)
    assert abs(panned["view"]["tx"] - moved["tx"] - 60) < 1
    assert panned["points"] == 1
    page.get_by_test_id("fit-button").click()
    wait_state(page, f"Math.abs(s.view.scale - {fit_scale}) < 1e-6")


def test_annotation_list_select_edit_delete(page):
    image_id = open_image(page, "scene-")
    wait_state(page, "s.annotations >= 0")
    start = state(page)["annotations"]
    click_image(page, 320, 240)
    wait_masks(page, 1)
    page.get_by_test_id("canvas").focus()
    page.keyboard.press("Enter")
    wait_state(page, f"s.annotations === {start + 1}")
    row = page.get_by_test_id("annotation-item").last
    annotation_id = int(row.get_attribute("data-annotation-id"))

    unselected = canvas_pixels(page)
    row.locator(".label").click()  # the row, not its category menu
    wait_state(page, f"s.selectedAnnotation === {annotation_id}")
    assert not np.array_equal(unselected, canvas_pixels(page)), "the selection is drawn"
    screenshot(page, "10-selected-annotation")

    # Edit the category: stored on the server.
    select = row.get_by_test_id("annotation-category")
    choice = select.locator("option").nth(2).get_attribute("value")
    select.select_option(choice)
    page.wait_for_function(
        """async ([image, id, want]) => {
            const list = await (await fetch(`/api/images/${image}/annotations`)).json();
            return list.some((a) => a.id === id && String(a.category_id) === want);
        }""",
        arg=[image_id, annotation_id, choice],
        timeout=20000,
    )
    # Delete it.
    page.locator(f"[data-annotation-id='{annotation_id}'] [data-testid=annotation-delete]").click()
    wait_state(page, f"s.annotations === {start} && s.selectedAnnotation === null")
    count = page.locator(f"[data-image-id='{image_id}'] [data-testid=image-count]")
    assert count.inner_text() == str(start)


def test_upload_shows_new_image_and_encoding_progress(page, tmp_path):
    picture = Image.fromarray(synthetic_image(240, 320, seed=5))
    encoded = io.BytesIO()
    picture.save(encoded, format="PNG")
    items = page.get_by_test_id("image-item").count()
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "uploaded.png", "mimeType": "image/png", "buffer": encoded.getvalue()}]
    )
    page.get_by_test_id("image-item").filter(has_text="uploaded.png").wait_for()
    assert page.get_by_test_id("image-item").count() == items + 1
    progress = page.get_by_test_id("encoding-progress")
    page.wait_for_function(
        """() => {
            const p = document.querySelector('[data-testid=encoding-progress]');
            return p.dataset.total === String(document.querySelectorAll(
                '[data-testid=image-item]').length) && p.dataset.encoded === p.dataset.total;
        }""",
        timeout=120000,
    )
    assert "encoded" in progress.inner_text()
    open_image(page, "uploaded.png")
    screenshot(page, "11-uploaded")


def test_server_errors_show_in_the_message_bar_and_the_page_keeps_working(page):
    # A file that is no image.
    page.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not a picture"}]
    )
    error = page.get_by_test_id("message-error").first
    error.wait_for()
    assert "POST /api/images failed (4" in error.inner_text()
    # A category name that exists already.
    page.get_by_test_id("category-name").fill("object")
    page.get_by_test_id("category-add").click()
    page.get_by_test_id("message-error").filter(has_text="/api/categories").wait_for()
    assert state(page)["errors"] >= 2
    screenshot(page, "12-error-message")
    # Messages close; the page still works: a click still gives masks.
    shown = page.get_by_test_id("message-error").count()
    error.get_by_role("button").click()
    assert page.get_by_test_id("message-error").count() == shown - 1
    click_image(page, *DISC_CENTRE)
    wait_masks(page, 1)


def test_token_from_the_url(browser, tmp_path):
    token = "s3cret-token-for-tests"
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(SET_USER)
    with segany_server(tmp_path / "data", unused_local_port(), "--token", token) as base:
        request = urllib.request.Request(f"{base}/api/images")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401

        page = context.new_page()
        page.goto(f"{base}/?token={token}")
        wait_state(page, "s.imageLoaded")
        assert "token" not in page.url, "the token is taken out of the address bar"
        assert page.evaluate("localStorage.getItem('segany.token')") == token
        page.goto(base)  # later visits use the stored token
        wait_state(page, "s.imageLoaded")
        assert page.get_by_test_id("message-error").count() == 0
        page.evaluate("localStorage.removeItem('segany.token')")
        page.goto(base)
        message = page.get_by_test_id("message-error").first
        message.wait_for()
        assert "401" in message.inner_text() and "?token=" in message.inner_text()
        screenshot(page, "13-token-missing")
        context.close()


def test_an_expired_previous_token_is_retried_without_it(page):
    """The server forgets old logits ("previous" then answers 4xx): the click still works."""
    refused = []

    def expire(route):
        body = json.loads(route.request.post_data or "{}")
        if body.get("previous"):
            refused.append(body["previous"])
            detail = "previous names no stored answer (expired, or from another server)"
            route.fulfill(status=422, json={"detail": detail})
        else:
            route.continue_()

    page.route("**/predict", expire)
    click_image(page, *DISC_CENTRE)
    wait_masks(page, 1)
    page.keyboard.press("Tab")  # the next click refines the second candidate
    click_image(page, 150, 300, button="right")
    wait_masks(page, 2)
    assert len(refused) == 1 and refused[0].endswith(".1")
    assert page.get_by_test_id("message-error").count() == 0


def test_auto_shows_its_progress_and_cancel_stops_the_servers_job(page, request):
    """Auto runs as a job: the button counts its slices ("Auto 3/70…") and Cancel stops it on
    the server too."""
    page.get_by_test_id("auto-button").click()
    cancel = page.get_by_test_id("auto-cancel")
    cancel.wait_for(state="visible")
    page.wait_for_function(
        "() => /^Auto \\d+\\/\\d+…$/.test("
        "document.querySelector('[data-testid=auto-button]').textContent.trim())",
        timeout=120_000,
    )
    screenshot(page, "auto-progress")
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        cancel.click()
    job_id = deleted.value.url.rsplit("/", 1)[1]
    wait_state(page, "!s.autoRunning && s.suggestions === 0")
    cancel.wait_for(state="hidden")
    assert page.get_by_test_id("auto-button").inner_text().strip() == "Auto"
    base = request.getfixturevalue("server")
    for _ in range(600):  # the server stops the job before its next slice
        job = json.loads(urllib.request.urlopen(f"{base}/api/auto/jobs/{job_id}").read())
        if job["state"] != "running":
            break
        page.wait_for_timeout(100)
    assert job["state"] == "cancelled" and job["done_steps"] < job["total_steps"]
