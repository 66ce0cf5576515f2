"""What the browser tests share: Chromium through Playwright, a real `segany serve` in a
subprocess, and reading the annotator's canvas.

The browser is Debian's Chromium driven by Playwright from PyPI (no `playwright install`):
    pip install playwright && apt-get install -y chromium
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "src" / "segany" / "server" / "static"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Loading the model and pre-encoding the demo images on one thread of a busy 2-core machine.
SERVER_START_S = 180
VIEWPORT = {"width": 1400, "height": 860}


def browser_problem() -> str | None:
    """What to install before the browser tests can run, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the browser tests need Playwright: pip install playwright "
            "(its browsers are not used: never run `playwright install`)"
        )
    if not CHROMIUM.exists():
        return f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium"
    return None


class Missing:
    """Stands in for the browser (or a page) when Playwright or Chromium is missing: the first
    use fails the test that uses it, with what to install (the tests fail, never skip)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __getattr__(self, name: str):
        pytest.fail(self.message)


def sync_playwright():
    """Playwright's sync entry point (call `browser_problem` first)."""
    from playwright.sync_api import sync_playwright as start

    return start()


def launch(playwright):
    """Debian's Chromium, headless."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot(page, name: str) -> Path:
    """Save a screenshot as test-artifacts/NAME.png (for people to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# ---- the server ------------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def segany_server(data: Path, port: int, *extra: str) -> Iterator[str]:
    """`segany serve --demo --data DATA --port PORT [extra]` until the block ends; yields the base
    URL once GET /health answers. The server's output goes to DATA/server.log, quoted on failure.
    """
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "server.log"
    command = [
        sys.executable,
        "-c",
        "import sys; from segany.cli.main import main; sys.exit(main(sys.argv[1:]))",
        "serve",
        "--demo",
        "--data",
        str(data),
        "--port",
        str(port),
        "--threads",
        "1",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"segany serve exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                if _get_json(f"{base}/health").get("status") == "ok":
                    break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"segany serve did not answer /health in {SERVER_START_S} s:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_encoded(base: str, timeout: float = SERVER_START_S, token: str | None = None) -> None:
    """Wait until the server has pre-encoded every image (GET /api/encoding)."""
    request = urllib.request.Request(f"{base}/api/encoding")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = json.loads(response.read())
        if status["pending"] == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"images still waiting to be encoded after {timeout} s: {status}")
        time.sleep(0.5)


# ---- the page --------------------------------------------------------------------------------


def state(page) -> dict:
    """window.seganyState, read now."""
    return page.evaluate("() => JSON.parse(JSON.stringify(window.seganyState))")


def wait_state(page, condition: str, timeout_s: float = 60) -> None:
    """Wait until `condition`, a JS expression over `s` (the state), holds."""
    page.wait_for_function(
        f"() => {{ const s = window.seganyState; return Boolean(s && ({condition})); }}",
        timeout=timeout_s * 1000,
    )


def next_frame(page) -> None:
    """Wait for two animation frames: the canvas has drawn the latest state."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def image_to_client(page, x: float, y: float) -> tuple[float, float]:
    """Image pixels -> page (client) coordinates, through the viewer's transform."""
    view = state(page)["view"]
    box = page.get_by_test_id("canvas").bounding_box()
    return box["x"] + view["tx"] + x * view["scale"], box["y"] + view["ty"] + y * view["scale"]


def canvas_pixels(page) -> np.ndarray:
    """The canvas' backing store now, (H, W, 4) uint8."""
    next_frame(page)
    payload = page.evaluate(
        """() => {
            const c = document.querySelector('[data-testid=canvas]');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let text = '';
            for (let i = 0; i < data.length; i += 0x8000) {
                text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
            }
            return {width: c.width, height: c.height, data: btoa(text)};
        }"""
    )
    flat = np.frombuffer(base64.b64decode(payload["data"]), dtype=np.uint8)
    return flat.reshape(payload["height"], payload["width"], 4)


def canvas_position(page, x: float, y: float) -> tuple[int, int]:
    """The canvas backing-store pixel (column, row) where image point (x, y) is drawn."""
    return _to_canvas(state(page)["view"], page.evaluate("() => window.devicePixelRatio"), x, y)


def _to_canvas(view: dict, ratio: float, x: float, y: float) -> tuple[int, int]:
    col = int((view["tx"] + x * view["scale"]) * ratio)
    row = int((view["ty"] + y * view["scale"]) * ratio)
    return col, row


def interior_samples(mask: np.ndarray, step: int = 7, margin: int = 3) -> list:
    """(x, y, inside) for image pixels on a grid whose (2 * margin + 1)^2 neighbourhood lies
    wholly inside or wholly outside `mask` (H, W): away from edges, where drawing blends."""
    height, width = mask.shape
    samples = []
    for y in range(margin, height - margin, step):
        for x in range(margin, width - margin, step):
            window = mask[y - margin : y + margin + 1, x - margin : x + margin + 1]
            if window.all() or not window.any():
                samples.append((x, y, bool(mask[y, x])))
    return samples


def mask_alignment(page, before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> dict:
    """Compare two canvases (before and after a mask was drawn, same view) with the mask (H, W)
    at interior samples: the pixel should change inside the mask and nowhere outside.
    Returns counts {inside, inside_changed, outside, outside_changed} of samples on screen."""
    counts = {"inside": 0, "inside_changed": 0, "outside": 0, "outside_changed": 0}
    height, width = before.shape[:2]
    view = state(page)["view"]
    ratio = page.evaluate("() => window.devicePixelRatio")
    for x, y, inside in interior_samples(mask):
        col, row = _to_canvas(view, ratio, x + 0.5, y + 0.5)  # the pixel's centre
        if not (0 <= col < width and 0 <= row < height):
            continue
        changed = int(np.abs(after[row, col, :3].astype(int) - before[row, col, :3]).max()) > 12
        key = "inside" if inside else "outside"
        counts[key] += 1
        counts[f"{key}_changed"] += changed
    return counts


# ---- static files without a server (for the pure-JS unit tests) -------------------------------

ORIGIN = "http://segany.test"


def serve_static(page) -> None:
    """Answer http://segany.test/static/* from the static folder and / with an empty page, so
    that the ES modules load in Chromium without any server."""

    def handle(route):
        path = route.request.url[len(ORIGIN) :].split("?")[0]
        if path.startswith("/static/"):
            file = (STATIC / path[len("/static/") :]).resolve()
            if STATIC in file.parents and file.is_file():
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                if file.suffix == ".js":
                    kind = "text/javascript"
                route.fulfill(status=200, body=file.read_bytes(), content_type=kind)
                return
            route.fulfill(status=404, body="not found")
            return
        route.fulfill(
            status=200, body="<!doctype html><title>unit</title>", content_type="text/html"
        )

    page.route(f"{ORIGIN}/**", handle)
    page.goto(f"{ORIGIN}/")


def chromium_or_missing() -> Iterator[Any]:
    """Yield Debian's Chromium driven by Playwright (closed afterwards), or a `Missing` that
    fails each test using it with what to install: the body of the tests' `browser` fixture."""
    problem = browser_problem()
    if problem:
        yield Missing(problem)
        return
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
