"""The probes of issue 24 replayed against the annotation server: what a hostile web page or an
unauthenticated client can no longer do.

- A foreign `Host` (DNS rebinding) is refused on every route, static files included.
- A cross-site form upload, or any state-changing request from a page of another origin
  (`Origin`, else `Referer`, or `Origin: null`), is refused and stores nothing.
- The token is checked before the body is read, for any header bytes (non-ASCII: 401, not 500).
- Bodies are bounded per route before they are read: Content-Length, and counted when chunked.
- The whole world at zoom 19 is refused by arithmetic, with the server's memory unchanged.
- A 100,000 x 100,000 px compressed GeoTIFF with prompts at opposite corners is refused before
  its window is read, with the server's memory bounded.

The ASGI layers are tested alone (a body that is never read), through FastAPI's TestClient on
SQLite and PostgreSQL, and against the real `segany serve` (LiveServer) with a raw socket that
counts the bytes it sends until the server answers. The browser's side (a hostile page on
another port) is tests/test_browser_security.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from postgres import postgres_server  # noqa: F401  (fixture)
from segany.cli.main import main
from segany.errors import ConfigError
from segany.server.app import UPLOAD_ROUTES, create_app
from segany.server.auth import TokenGuard, token_matches
from segany.server.body_limits import BodyLimitGuard
from segany.server.host_origin import AllowedHosts, HostOriginGuard
from segany.server.settings import Limits, ServerSettings
from server_helpers import LOCAL_URL, LiveServer, png_bytes, scene_png

TOKEN = "s3cret-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVIL = "https://evil.example"
MiB = 2**20


# ---- fixtures and helpers ---------------------------------------------------------------------


def refused(response, status: int, *words: str) -> str:
    """The status, a JSON `detail` naming the problem, and the connection closed after it."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in {detail!r}"
    return detail


def project_state(client: TestClient, headers: dict | None = None) -> tuple:
    """What the project holds, as the API shows it: image ids and categories."""
    images = client.get("/api/images", headers=headers).json()["images"]
    categories = client.get("/api/categories", headers=headers).json()
    return sorted(i["id"] for i in images), sorted(c["name"] for c in categories)


def asgi_call(app, method: str, path: str, headers: list, chunks: list[bytes]) -> dict:
    """One HTTP request through the ASGI callable `app`: {"status", "body", "reads"}, where
    reads counts the body messages the app (or a guard) took from the client."""
    sent: list[dict] = []
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        if reads < len(chunks):
            reads += 1
            return {
                "type": "http.request",
                "body": chunks[reads - 1],
                "more_body": reads < len(chunks),
            }
        await asyncio.sleep(3600)  # the client is still there, sending nothing more
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "http",
        "headers": [(k.lower(), v) for k, v in headers],
        "query_string": b"",
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "body": body, "reads": reads, "headers": start["headers"]}


async def reading_app(scope, receive, send) -> None:
    """An app that reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


# ---- Host: DNS rebinding ----------------------------------------------------------------------

# The pages, a static file, the API (with and without a token), the docs, the map service.
EVERY_KIND_OF_ROUTE = [
    ("GET", "/"),
    ("GET", "/static/main.js"),
    ("GET", "/map"),
    ("GET", "/health"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/api/images"),
    ("POST", "/api/categories"),
    ("POST", "/infer_samgis"),
]


def test_a_foreign_host_is_refused_on_every_route(serve):
    client = serve()
    before = project_state(client)
    # DNS rebinding: evil.example re-pointed at 127.0.0.1; the browser still sends its name.
    for host in ("evil.example", "evil.example:8000", "rebind.attacker.test:80", "localhost.evil"):
        for method, path in EVERY_KIND_OF_ROUTE:
            response = client.request(method, path, headers={"Host": host}, json={"name": "x"})
            detail = refused(response, 400, "--allowed-host", host.split(":")[0])
            assert "Traceback" not in detail
            assert response.headers["connection"] == "close"
    assert project_state(client) == before
    for malformed in ("", "a b", "evil.example:port", "user@127.0.0.1", "127.0.0.1/x"):
        refused(client.get("/health", headers={"Host": malformed}), 400, "Host")


def test_loopback_names_ip_addresses_and_allowed_hosts_are_served(serve):
    client = serve(allowed_hosts=("annotate.example.org", ".lab.example"))
    served = ["127.0.0.1", "127.0.0.1:8000", "localhost:1234", "LOCALHOST", "[::1]:8000",
              "192.168.1.5:8000", "[fe80::1]", "annotate.example.org", "lab.example",
              "gpu1.lab.example:8000", "localhost."]  # fmt: skip
    for host in served:
        response = client.get("/health", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)
    for host in ("example.org", "xlab.example", "annotate.example.org.evil"):
        refused(client.get("/static/main.js", headers={"Host": host}), 400, "--allowed-host")


def test_the_bound_address_is_allowed_and_a_star_allows_any_host(tmp_path):
    hosts = AllowedHosts("segany.lan")
    assert hosts.allows("segany.lan") and not hosts.allows("other.lan")
    assert not AllowedHosts("0.0.0.0").allows("0.0.0.0.evil")
    assert AllowedHosts("0.0.0.0", ["*"]).allows("anything.example")


def test_a_request_without_exactly_one_host_is_refused():
    guard = HostOriginGuard(reading_app, AllowedHosts("127.0.0.1"))
    for headers in ([], [(b"host", b"127.0.0.1"), (b"host", b"evil.example")]):
        answer = asgi_call(guard, "GET", "/health", headers, [b""])
        assert answer["status"] == 400 and b"exactly one Host" in answer["body"]


# ---- Origin: cross-site writes ----------------------------------------------------------------


def test_a_cross_site_form_upload_is_refused_and_stores_nothing(serve):
    client = serve()
    files = {"file": ("scene.png", scene_png(3), "image/png")}
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed iframe, a file:// page
        {"Origin": "http://127.0.0.1:9999"},  # another local app (another port)
        {"Origin": "http://localhost"},  # another host name of this machine, another origin
        {"Referer": f"{EVIL}/page.html"},  # a browser that sent no Origin
        {"Origin": "not a url"},
    ):
        response = client.post("/api/images", files=files, headers=headers)
        refused(response, 403, "cross-origin", "--cors-origin")
    assert client.get("/api/images").json()["total"] == 0


def test_every_state_changing_method_from_another_origin_is_refused(serve):
    client = serve()
    image = client.post("/api/images", files={"file": ("a.png", scene_png(1), "image/png")})
    category = client.post("/api/categories", json={"name": "kept"})
    assert image.status_code == 201 and category.status_code == 201
    image_id, category_id = image.json()["id"], category.json()["id"]
    before = project_state(client)
    calls = [
        ("POST", "/api/categories", {"name": "planted"}),
        ("PATCH", f"/api/categories/{category_id}", {"name": "renamed"}),
        ("DELETE", f"/api/categories/{category_id}", None),
        ("PATCH", f"/api/images/{image_id}", {"reviewed": True}),
        ("DELETE", f"/api/images/{image_id}", None),
        ("POST", f"/api/images/{image_id}/predict", {"points": [[10, 10, 1]]}),
        ("POST", "/api/import", {"paths": ["/etc"]}),
        ("PUT", "/api/images", None),
    ]
    for method, path, body in calls:
        for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Referer": "http://evil.test/"}):
            refused(client.request(method, path, json=body, headers=headers), 403, "cross-origin")
    assert project_state(client) == before
    # The app's own pages (same origin), and clients that are no browser (no Origin), write.
    same = {"Origin": LOCAL_URL, "Referer": f"{LOCAL_URL}/?image=1"}
    assert client.post("/api/categories", json={"name": "own"}, headers=same).status_code == 201
    assert client.post("/api/categories", json={"name": "script"}).status_code == 201
    # Reads from other origins are the browser's to refuse: no CORS header lets them through.
    read = client.get("/api/images", headers={"Origin": EVIL})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_pages_say_they_may_not_be_framed_or_embedded_elsewhere(serve):
    client = serve()
    for path in ("/", "/static/main.js", "/api/images", "/health"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY"
        assert headers["content-security-policy"] == "frame-ancestors 'none'"
        assert headers["cross-origin-resource-policy"] == "same-origin"
        assert headers["x-content-type-options"] == "nosniff"


def test_cors_origins_may_read_and_write_and_no_others(serve):
    friend = "http://localhost:3000"
    client = serve(cors_origins=(f"{friend}/",), token=TOKEN)
    preflight = client.options(
        "/api/categories",
        headers={
            "Origin": friend,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text  # answered before the token check
    assert preflight.headers["access-control-allow-origin"] == friend
    made = client.post("/api/categories", json={"name": "x"}, headers={"Origin": friend, **AUTH})
    assert made.status_code == 201 and made.headers["access-control-allow-origin"] == friend
    refused(
        client.post("/api/categories", json={"name": "y"}, headers={"Origin": EVIL, **AUTH}),
        403,
        "cross-origin",
    )
    other = client.options(
        "/api/categories",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


# ---- the token --------------------------------------------------------------------------------

BAD_AUTHORIZATION = [
    "Bearer s\u00e9cret".encode("latin-1"),  # latin-1, not ASCII: a 500 before (compare_digest)
    f"Bearer {TOKEN}\u00e9".encode(),  # UTF-8 bytes after the token
    b"Bearer \xff\xfe\x00",
    "Bearer \u2603".encode(),
    b"Bearer",
    b"Bearer ",
    b"bearer" + TOKEN.encode(),
    TOKEN.encode(),
    b"Basic " + TOKEN.encode(),
    b"Bearer " + TOKEN.encode() + b" extra",
    b"Bearer " + TOKEN.encode()[:-1],
    b"Token " + TOKEN.encode(),
    b"\x00",
    b"",
]


def test_any_authorization_bytes_without_the_token_are_401(serve):
    client = serve(token=TOKEN)
    for value in BAD_AUTHORIZATION:
        for method, path in (
            ("GET", "/api/images"),
            ("POST", "/api/images"),
            ("POST", "/infer_samgis"),
            ("GET", "/api/geo/source"),
        ):
            response = client.request(method, path, headers={"Authorization": value})
            refused(response, 401, "token")
            assert response.headers["www-authenticate"] == "Bearer"
    for good in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER \t{TOKEN} "):
        assert client.get("/api/images", headers={"Authorization": good}).status_code == 200


def test_two_authorization_headers_are_401():
    assert not token_matches([b"Bearer " + TOKEN.encode()] * 2, TOKEN)
    assert token_matches([b"Bearer " + TOKEN.encode()], TOKEN)
    assert token_matches(["Bearer gr\u00fc\u00dfe".encode()], "gr\u00fc\u00dfe")  # a UTF-8 token


def test_the_pages_and_health_need_no_token_and_everything_else_does(serve):
    client = serve(token=TOKEN)
    for path in ("/", "/health", "/map", "/static/main.js", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    # Every operation the API describes, and paths it does not (deny by default).
    paths = [p for p in client.app.openapi()["paths"] if p not in ("/health",)]
    for path in [*paths, "/api/nothing-here", "/static", "/health/", "/anything"]:
        refused(client.get(re.sub(r"\{[^}]+\}", "1", path)), 401)  # {image_id} -> 1


def test_the_api_description_names_the_token_for_docs(serve):
    schema = serve(token=TOKEN).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schema["paths"]["/api/images"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_the_start_up_line_says_who_may_reach_the_server(tmp_path):
    from segany.cli.serve import access_line

    line = access_line(ServerSettings(data_dir=tmp_path))
    assert "no token" in line and "localhost" in line and "cross-origin pages allowed: none" in line
    settings = ServerSettings(
        data_dir=tmp_path, host="0.0.0.0", token=TOKEN, allowed_hosts=("gpu.lab",),
        cors_origins=("https://app.example.org",),
    )  # fmt: skip
    line = access_line(settings)
    assert "the token on every API request" in line and "gpu.lab" in line
    assert "0.0.0.0" not in line and "https://app.example.org" in line


def test_the_token_is_checked_before_the_body_is_read():
    guard = TokenGuard(reading_app, TOKEN)
    chunks = [b"x" * MiB] * 3
    answer = asgi_call(guard, "POST", "/api/images", [(b"content-length", b"3145728")], chunks)
    assert answer["status"] == 401 and answer["reads"] == 0
    authorised = [(b"authorization", f"Bearer {TOKEN}".encode())]
    answer = asgi_call(guard, "POST", "/api/images", authorised, chunks)
    assert answer["status"] == 200 and answer["body"] == b"3145728"


# ---- body limits ------------------------------------------------------------------------------


def test_a_content_length_over_the_limit_is_413_before_reading():
    guard = BodyLimitGuard(reading_app, 10 * MiB, MiB, UPLOAD_ROUTES)
    huge = [(b"content-length", str(400 * MiB).encode())]
    for path in ("/api/images", "/api/categories", "/api/geo/segment"):
        answer = asgi_call(guard, "POST", path, huge, [b"x"])
        assert answer["status"] == 413 and answer["reads"] == 0
        assert b"this route's limit" in answer["body"]
    two_mib = [(b"content-length", str(2 * MiB).encode())]
    assert asgi_call(guard, "POST", "/api/images", two_mib, [b"x" * 2 * MiB])["status"] == 200
    assert asgi_call(guard, "POST", "/api/categories", two_mib, [b"x"])["status"] == 413
    not_a_number = [(b"content-length", b"12abc")]
    two_numbers = [(b"content-length", b"1"), (b"content-length", b"2")]
    for bad in (not_a_number, two_numbers):
        assert asgi_call(guard, "POST", "/api/categories", bad, [b"x"])["status"] == 400


def test_a_chunked_body_is_cut_off_past_the_limit():
    guard = BodyLimitGuard(reading_app, 4 * MiB, MiB, UPLOAD_ROUTES)
    chunks = [b"x" * (MiB // 4)] * 400  # 100 MiB, no Content-Length
    answer = asgi_call(guard, "POST", "/api/images", [], chunks)
    assert answer["status"] == 413 and answer["reads"] == 17  # 4 MiB and one chunk more
    answer = asgi_call(guard, "POST", "/api/categories", [], chunks)
    assert answer["status"] == 413 and answer["reads"] == 5
    # A body shorter than the limit reaches the route whole.
    assert asgi_call(guard, "POST", "/api/images", [], chunks[:8])["body"] == str(2 * MiB).encode()


def test_json_routes_take_the_small_limit_and_uploads_the_large_one(serve):
    client = serve(limits=Limits(upload_bytes=200_000, json_bytes=10_000))
    refused(client.post("/api/categories", json={"name": "x" * 12_000}), 413, "10,000 bytes")

    def chunked(size: int):
        for _ in range(size // 1_000):
            yield b" " * 1_000

    headers = {"Content-Type": "application/json"}
    refused(client.post("/api/categories", content=chunked(50_000), headers=headers), 413)
    picture = scene_png(2)  # over the JSON limit, within the upload limit
    assert 10_000 < len(picture) < 200_000
    made = client.post("/api/images", files={"file": ("a.png", picture, "image/png")})
    assert made.status_code == 201, made.text
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    files = {"file": ("n.png", png_bytes(noise), "image/png")}
    refused(client.post("/api/images", files=files), 413, "200,000 bytes")
    assert client.get("/api/images").json()["total"] == 1


def test_every_route_that_takes_a_file_has_the_upload_limit(tmp_path):
    app = create_app(ServerSettings(data_dir=tmp_path, pre_encode=False))
    takes_files = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
    }
    assert takes_files == set(UPLOAD_ROUTES)


# ---- the settings and the command line --------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"cors_origins": ("*",)}, "not allowed"),
        ({"cors_origins": ("https://app.example.org/path",)}, "without a path"),
        ({"cors_origins": ("app.example.org",)}, "scheme://host"),
        ({"cors_origins": ("ftp://app.example.org",)}, "scheme://host"),
        ({"allowed_hosts": ("http://annotate.example.org",)}, "bare host name"),
        ({"allowed_hosts": ("annotate.example.org:8000",)}, "bare host name"),
        ({"allowed_hosts": ("a/b",)}, "bare host name"),
        ({"allowed_hosts": ("",)}, "bare host name"),
        ({"token": "two words"}, "white space"),
    ],
)
def test_settings_refuse_unsafe_access_options(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        ServerSettings(data_dir=tmp_path, **settings)


def test_access_options_travel_to_the_workers(tmp_path):
    settings = ServerSettings(
        data_dir=tmp_path,
        allowed_hosts=("annotate.example.org", "::1", ".lab.example"),
        cors_origins=("HTTPS://App.Example.org:443",),
        limits=Limits(json_bytes=123),
    )
    assert settings.cors_origins == ("https://app.example.org",)
    again = ServerSettings.from_json(settings.to_json())
    assert again.allowed_hosts == settings.allowed_hosts
    assert again.cors_origins == settings.cors_origins and again.limits.json_bytes == 123


def test_serve_refuses_a_bad_allowed_host_with_exit_2(tmp_path, capsys):
    argv = ["serve", "--data", str(tmp_path), "--allowed-host", "http://x.org", "--port", "1"]
    assert main(argv) == 2
    assert "bare host name" in capsys.readouterr().err
    argv = ["serve", "--data", str(tmp_path), "--cors-origin", "*", "--port", "1"]
    assert main(argv) == 2


# ---- the real server: bytes sent before the answer ---------------------------------------------


def rss_bytes(pid: int) -> int:
    """The resident memory of process `pid` now (VmRSS)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024


def send_until_answered(port: int, head: bytes, total: int, chunked: bool = False) -> tuple:
    """Send the request head, then up to `total` body bytes (zeros, in 256 KiB pieces, chunked
    or not) until the server answers or closes the connection. Returns (body bytes handed to
    the socket by then, the server's status or None when the connection was reset first)."""
    piece = b"\0" * (256 << 10)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
        except OSError:
            pass  # the server closed the connection (reset) while we were sending
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return sent, int(match.group(1)) if match else None


def request_head(port: int, path: str, length: int | None, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    """The real `segany serve --token TOKEN`, on SQLite or a fresh PostgreSQL database."""
    db = None
    if request.param == "postgresql":
        db = request.getfixturevalue("postgres_server").new_database()
    data = tmp_path_factory.mktemp("live") / "data"
    with LiveServer(data, "--no-pre-encode", "--token", TOKEN, db=db) as server:
        yield server


MULTIPART = "Content-Type: multipart/form-data; boundary=b0undary"
FILE_PART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
)


def test_a_400_mb_body_is_refused_before_64_mb_are_sent(live):
    total, limit = 400 * MiB, Limits().upload_bytes
    port = live.port
    # No token: 401 from the headers, whether the body says its length or is chunked.
    for length, chunked in ((total, False), (None, True)):
        head = request_head(port, "/api/images", length, MULTIPART)
        sent, status = send_until_answered(port, head, total, chunked)
        assert status in (401, None) and sent < limit, (sent, status)
        print(
            f"\nno token, {'chunked' if chunked else 'Content-Length'}: {status} after "
            f"{sent / MiB:.1f} MiB sent"
        )
    # The token, a Content-Length over the limit: 413 from the headers.
    head = request_head(port, "/api/images", total, MULTIPART, f"Authorization: Bearer {TOKEN}")
    sent, status = send_until_answered(port, head, total)
    assert status in (413, None) and sent < limit, (sent, status)
    print(f"token, Content-Length: {status} after {sent / MiB:.1f} MiB sent")
    # The token and a chunked upload: read up to the limit, then 413 and the body cut off.
    head = request_head(port, "/api/images", None, MULTIPART, f"Authorization: Bearer {TOKEN}")
    first_chunk = b"%x\r\n%s\r\n" % (len(FILE_PART), FILE_PART)  # the file part's head
    sent, status = send_until_answered(port, head + first_chunk, total, chunked=True)
    assert status in (413, None) and limit <= sent < limit + 32 * MiB, (sent, status)
    print(f"token, chunked upload: {status} after {sent / MiB:.1f} MiB sent")
    # A JSON route's limit is far smaller.
    head = request_head(
        port,
        "/api/categories",
        None,
        "Content-Type: application/json",
        f"Authorization: Bearer {TOKEN}",
    )
    sent, status = send_until_answered(port, head, total, chunked=True)
    assert status in (413, None) and sent < 32 * MiB, (sent, status)
    print(f"token, chunked JSON body: {status} after {sent / MiB:.1f} MiB sent")
    with live.client(headers=AUTH) as http:
        assert http.get("/api/images").json()["total"] == 0  # nothing stored
        assert http.get("/health").status_code == 200  # and the server serves on


def test_a_non_ascii_token_is_401_on_the_live_server(live):
    # Non-ASCII bytes (the HTTP parser itself answers 400 to control bytes such as NUL).
    for value in (BAD_AUTHORIZATION[0], BAD_AUTHORIZATION[1], BAD_AUTHORIZATION[3]):
        head = (
            f"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n".encode()
            + b"Authorization: "
            + value
            + b"\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
            sock.sendall(head)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_a_rebinding_host_is_refused_on_the_live_server(live):
    with live.client(headers={**AUTH, "Host": f"evil.example:{live.port}"}) as http:
        for path in ("/", "/static/main.js", "/api/images"):
            refused(http.get(path), 400, "--allowed-host")


def test_the_whole_world_at_zoom_19_is_refused_by_arithmetic(live):
    world = {
        "bbox": {"ne": {"lat": 85.0, "lng": 180.0}, "sw": {"lat": -85.0, "lng": -180.0}},
        "prompt": [{"type": "point", "data": {"lat": 0.0, "lng": 0.0}, "label": 1}],
        "zoom": 19,
    }
    with live.client(headers=AUTH) as http:
        http.get("/health")
        before = rss_bytes(live.process.pid)
        start = time.perf_counter()
        response = http.post("/infer_samgis", json=world)
        seconds = time.perf_counter() - start
        growth = rss_bytes(live.process.pid) - before
    refused(response, 422, "tiles", "limit of 100")
    assert growth < 50 * MiB, growth
    print(
        f"\nwhole world at zoom 19: {response.status_code} in {seconds * 1000:.0f} ms, "
        f"RSS growth {growth / MiB:.1f} MiB"
    )


def huge_geotiff(path: Path, side: int = 100_000) -> Path:
    """A `side` x `side` px RGB GeoTIFF (UTM 33N, 1 m pixels), tiled, DEFLATE, sparse: only two
    512 px blocks (top-left and bottom-right corners) are written, the rest costs no bytes."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(
        driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32633",
        transform=from_origin(500_000, 5_000_000, 1, 1), tiled=True, blockxsize=512,
        blockysize=512, compress="deflate", sparse_ok=True, bigtiff="yes",
    )  # fmt: skip
    with warnings.catch_warnings(), rasterio.open(path, "w", **profile) as out:
        block = np.full((3, 512, 512), 200, np.uint8)
        out.write(block, window=Window(0, 0, 512, 512))
        out.write(block, window=Window(side - 512, side - 512, 512, 512))
    return path


def test_a_100000_px_geotiff_with_prompts_at_opposite_corners(live, tmp_path):
    tif = huge_geotiff(tmp_path / "huge.tif")
    assert tif.stat().st_size < 8 * MiB  # compressed and sparse: small on disk
    corners = {"points": [[500_010.0, 4_999_990.0, 1], [599_990.0, 4_900_010.0, 0]]}
    with live.client(headers=AUTH) as http:
        http.get("/health")
        before = rss_bytes(live.process.pid)
        start = time.perf_counter()
        response = http.post(
            "/api/geo/segment",
            files={"file": ("huge.tif", tif.read_bytes(), "image/tiff")},
            data={"prompts": json.dumps(corners)},
        )
        seconds = time.perf_counter() - start
        growth = rss_bytes(live.process.pid) - before
        assert http.get("/health").status_code == 200
    refused(response, 422, "overviews", "100000 x 100000", "limit")
    assert growth < 100 * MiB, growth
    print(
        f"\n100,000^2 px GeoTIFF, opposite corners: {response.status_code} in "
        f"{seconds * 1000:.0f} ms, RSS growth {growth / MiB:.1f} MiB"
    )
