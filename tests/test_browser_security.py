"""A hostile web page against `segany serve`, in Debian's Chromium (Playwright): the page, served
from another local port as any website the annotator visits would be, tries to read, write and
delete the project through the browser - fetch (CORS and no-cors), a multipart form POST, an
urlencoded form POST, <img> and <script> reads. It learns nothing and changes nothing: the
project, read back through the API afterwards, is as it was. The same requests from the app's
own page succeed (the refusals are by origin, not by kind of request).

DNS rebinding (a hostile name re-pointed at 127.0.0.1) needs a DNS server; its effect, a foreign
Host header, is tested in tests/test_security.py.

Needs: pip install playwright; apt-get install -y chromium (never `playwright install`).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from browser_helpers import VIEWPORT, Missing, chromium_or_missing, segany_server
from conftest import unused_local_port

pytestmark = pytest.mark.browser

# Every attack runs, whatever the ones before it did; each records what the page could see.
HOSTILE_PAGE = """<!doctype html>
<title>a page on some website</title>
<script>
const API = %(api)s;
const IMAGE = %(image)s;
window.results = {};
async function attempt(name, run) {
  try { window.results[name] = await run(); }
  catch (error) { window.results[name] = "error: " + error.name; }
}
function png() {  // a 1 x 1 PNG
  const b64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ"
    + "/pLvAAAAAElFTkSuQmCC";
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
function loads(tag, url) {
  return new Promise((resolve) => {
    const element = document.createElement(tag);
    element.onload = () => resolve("loaded" + (tag === "img" ? " " + element.naturalWidth : ""));
    element.onerror = () => resolve("blocked");
    element.src = url;
    document.body.appendChild(element);
  });
}
function submitForm(action, enctype, fields, file) {
  return new Promise((resolve) => {
    const form = document.createElement("form");
    const frame = document.createElement("iframe");  // one frame per form: its own load event
    frame.name = "sink" + document.forms.length;
    document.body.appendChild(frame);
    form.method = "POST"; form.action = API + action; form.enctype = enctype;
    form.target = frame.name;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.name = name; input.value = value; form.appendChild(input);
    }
    if (file) {
      const input = document.createElement("input");
      input.type = "file"; input.name = "file";
      const transfer = new DataTransfer();
      transfer.items.add(new File([png()], "planted.png", { type: "image/png" }));
      input.files = transfer.files;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    frame.onload = () => {
      let seen = "unreadable";
      try { seen = frame.contentDocument ? frame.contentDocument.body.innerText : "unreadable"; }
      catch (error) { seen = "unreadable"; }
      resolve(seen);
    };
    form.submit();
  });
}
async function run() {
  await attempt("read list", async () => (await fetch(API + "/api/images")).status);
  await attempt("read list no-cors", async () => {
    const r = await fetch(API + "/api/images", { mode: "no-cors" });
    return r.type + " " + r.status + " " + (await r.text()).length;
  });
  await attempt("upload no-cors", async () => {
    const form = new FormData();
    form.append("file", new Blob([png()], { type: "image/png" }), "planted.png");
    const r = await fetch(API + "/api/images", { method: "POST", mode: "no-cors", body: form });
    return r.type + " " + r.status;
  });
  await attempt("category no-cors", async () => {
    const body = JSON.stringify({ name: "planted" });
    const r = await fetch(API + "/api/categories",
      { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body });
    return r.type + " " + r.status;
  });
  await attempt("category json", async () => (await fetch(API + "/api/categories", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "planted" }) })).status);
  await attempt("delete", async () =>
    (await fetch(API + "/api/images/" + IMAGE, { method: "DELETE" })).status);
  await attempt("delete no-cors", async () =>
    (await fetch(API + "/api/images/" + IMAGE, { method: "DELETE", mode: "no-cors" })).status);
  await attempt("img", () => loads("img", API + "/api/images/" + IMAGE + "/file"));
  await attempt("script", () => loads("script", API + "/api/images"));
  await attempt("form upload", () =>
    submitForm("/api/images", "multipart/form-data", {}, true));
  await attempt("form category", () =>
    submitForm("/api/categories", "application/x-www-form-urlencoded", { name: "planted" }));
  window.done = true;
}
run();
</script>
"""


@pytest.fixture(scope="module")
def browser():
    """Chromium, or a stand-in that fails each test with what to install."""
    yield from chromium_or_missing()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """The demo project (sample.png, three scenes, three categories) at its defaults: loopback,
    no token - the set-up every page the annotator visits could reach."""
    data = tmp_path_factory.mktemp("serve-hostile")
    with segany_server(data, unused_local_port(), "--no-pre-encode") as base:
        yield base


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def project(base: str) -> dict:
    """What the project holds, read through the API."""
    images = get_json(f"{base}/api/images")["images"]
    return {
        "images": sorted((i["id"], i["file_name"], i["reviewed"]) for i in images),
        "categories": sorted(c["name"] for c in get_json(f"{base}/api/categories")),
    }


class HostilePage:
    """http://localhost:PORT/ (another origin than the server's 127.0.0.1:ITS_PORT) answering
    every GET with `html`."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", unused_local_port()), Handler)
        self.url = f"http://localhost:{self.http.server_address[1]}/"

    def __enter__(self) -> HostilePage:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_a_page_of_another_origin_can_neither_read_nor_write(browser, server):
    if isinstance(browser, Missing):
        browser.new_context()  # fails the test with what to install
    before = project(server)
    image = before["images"][0][0]
    html = HOSTILE_PAGE % {"api": json.dumps(server), "image": json.dumps(image)}
    context = browser.new_context(viewport=VIEWPORT)
    try:
        with HostilePage(html) as hostile:
            page = context.new_page()
            # What left the browser for the server, and the answers the page's network saw
            # (those refused by Cross-Origin-Resource-Policy are network errors, not answers).
            sent, answers = [], []
            page.on("request", lambda r: sent.append((r.method, r.url.replace(server, ""))))
            page.on(
                "response",
                lambda r: answers.append((r.request.method, r.url.replace(server, ""), r.status)),
            )
            page.goto(hostile.url)
            page.wait_for_function("() => window.done === true", timeout=60_000)
            results = page.evaluate("() => window.results")
    finally:
        context.close()
    # Nothing read: CORS refuses the reads; no-cors answers and embeds are refused by the
    # answers' Cross-Origin-Resource-Policy; the form's answer lands in a frame the page cannot
    # read (and that may not show it: X-Frame-Options).
    for name in ("read list", "read list no-cors", "upload no-cors", "category no-cors"):
        assert results[name] == "error: TypeError", results
    assert results["img"] == "blocked" and results["script"] == "blocked", results
    assert results["form upload"] == "unreadable" and results["form category"] == "unreadable"
    # Nothing written: the requests a page may send across sites without asking (no-cors
    # fetches, forms) reach the server and are refused there; the others never leave the
    # browser (their CORS preflight fails, or no-cors does not allow them).
    assert sent.count(("POST", "/api/images")) >= 2, sent  # the no-cors fetch, the form
    assert sent.count(("POST", "/api/categories")) >= 2, sent  # no-cors text/plain, the form
    # The forms' answers (they load a frame) show the server's refusal.
    assert {("POST", "/api/images", 403), ("POST", "/api/categories", 403)} <= set(answers)
    assert all(status == 403 for method, _, status in answers if method == "POST"), answers
    for name in ("category json", "delete", "delete no-cors"):
        assert results[name] == "error: TypeError", results
    assert project(server) == before


def test_the_apps_own_page_may_write(browser, server):
    """The control: the same kinds of request from the server's own origin succeed."""
    if isinstance(browser, Missing):
        browser.new_context()
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{server}/health")
        status = page.evaluate(
            """async () => {
                const body = JSON.stringify({ name: "own page" });
                const headers = { "Content-Type": "application/json" };
                const made = await fetch("/api/categories", { method: "POST", headers, body });
                const id = (await made.json()).id;
                const gone = await fetch("/api/categories/" + id, { method: "DELETE" });
                return [made.status, gone.status];
            }"""
        )
    finally:
        context.close()
    assert status == [201, 204]
