"""What the map tests (and benchmarks/bench_geo.py) share: a tile server on 127.0.0.1 that draws
a known scene, flat-coloured shapes at known places on a plain background, at any zoom.

The scene is defined in Web Mercator metres and drawn with the textbook spherical-Mercator
formulas, written out here rather than taken from segany.geo, so that the tests check segany's
projection against an independent one.
"""

from __future__ import annotations

import io
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image
from shapely.geometry import Polygon

RADIUS = 6378137.0
HALF = math.pi * RADIUS  # half the side of the Web Mercator square, metres
BACKGROUND = (225, 225, 225)


def to_mercator(lng: float, lat: float) -> tuple[float, float]:
    return RADIUS * math.radians(lng), RADIUS * math.log(
        math.tan(math.pi / 4 + math.radians(lat) / 2)
    )


def to_lnglat(x: float, y: float) -> tuple[float, float]:
    return math.degrees(x / RADIUS), math.degrees(2 * math.atan(math.exp(y / RADIUS)) - math.pi / 2)


def metres_per_pixel(zoom: int) -> float:
    return 2 * HALF / (256 * 2**zoom)


@dataclass(frozen=True)
class Shape:
    """A flat-coloured shape; sizes in pixels at the scene's zoom, placed relative to the
    scene's centre (x east, y north)."""

    name: str
    kind: str  # "rect", "disk" or "ring" (a square with a square hole)
    dx: float
    dy: float
    size: float  # rect: (width, height) in `size`, `size2`; disk: radius; ring: outer side
    size2: float
    color: tuple[int, int, int]


class Scene:
    """Shapes around (lng, lat) at `zoom` (sizes are pixels at that zoom)."""

    def __init__(self, lng: float = 7.0, lat: float = 45.0, zoom: int = 16) -> None:
        self.lng, self.lat, self.zoom = lng, lat, zoom
        self.cx, self.cy = to_mercator(lng, lat)
        self.res = metres_per_pixel(zoom)
        self.shapes = {
            s.name: s
            for s in (
                Shape("rect", "rect", -120, 80, 90, 60, (200, 40, 40)),
                Shape("disk", "disk", 110, 90, 40, 0, (40, 60, 200)),
                Shape("ring", "ring", 0, -110, 110, 44, (40, 160, 60)),
            )
        }

    def lnglat(self, dx: float, dy: float) -> tuple[float, float]:
        """(lng, lat) of the place (dx, dy) pixels east and north of the centre."""
        return to_lnglat(self.cx + dx * self.res, self.cy + dy * self.res)

    def inside(self, name: str) -> tuple[float, float]:
        """(lng, lat) of a point well inside shape `name` (for the ring: on its left side)."""
        shape = self.shapes[name]
        if shape.kind == "ring":
            return self.lnglat(shape.dx - (shape.size + shape.size2) / 4, shape.dy)
        return self.lnglat(shape.dx, shape.dy)

    def bbox(self, half_width: float = 260, half_height: float = 250) -> dict:
        """SamGIS's bbox of the scene's middle (sizes in pixels at the scene's zoom)."""
        west, south = self.lnglat(-half_width, -half_height)
        east, north = self.lnglat(half_width, half_height)
        return {"ne": {"lat": north, "lng": east}, "sw": {"lat": south, "lng": west}}

    def polygon(self, name: str) -> Polygon:
        """The shape's true outline in (lng, lat) (a disk as a 128-gon)."""
        s = self.shapes[name]
        if s.kind == "disk":
            angles = np.linspace(0, 2 * np.pi, 128, endpoint=False)
            corners = [(s.dx + s.size * math.cos(a), s.dy + s.size * math.sin(a)) for a in angles]
            return Polygon([self.lnglat(x, y) for x, y in corners])
        w, h = (s.size, s.size2) if s.kind == "rect" else (s.size, s.size)
        outer = self._square(s.dx, s.dy, w, h)
        holes = [self._square(s.dx, s.dy, s.size2, s.size2)] if s.kind == "ring" else []
        return Polygon(outer, holes)

    def _square(self, dx: float, dy: float, w: float, h: float) -> list[tuple[float, float]]:
        x0, x1, y0, y1 = dx - w / 2, dx + w / 2, dy - h / 2, dy + h / 2
        return [self.lnglat(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]

    def render(self, z: int, x: int, y: int) -> np.ndarray:
        """Tile (z, x, y) of the scene: (256, 256, 3) uint8, each pixel by its centre."""
        res = metres_per_pixel(z)
        cols = (x * 256 + np.arange(256) + 0.5) * res - HALF
        rows = HALF - (y * 256 + np.arange(256) + 0.5) * res
        mx, my = np.meshgrid(cols, rows)  # (256, 256) metres each
        u, v = (mx - self.cx) / self.res, (my - self.cy) / self.res  # scene pixels from centre
        image = np.empty((256, 256, 3), np.uint8)
        image[:] = BACKGROUND
        for s in self.shapes.values():
            du, dv = u - s.dx, v - s.dy
            if s.kind == "rect":
                inside = (abs(du) <= s.size / 2) & (abs(dv) <= s.size2 / 2)
            elif s.kind == "disk":
                inside = du**2 + dv**2 <= s.size**2
            else:
                inside = (np.maximum(abs(du), abs(dv)) <= s.size / 2) & (
                    np.maximum(abs(du), abs(dv)) > s.size2 / 2
                )
            image[inside] = s.color
        return image


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class TileServer:
    """Tiles of `scene` on 127.0.0.1: GET /MODE/{z}/{x}/{y}.png. MODE "ok" draws the scene;
    "fail" answers 500, "missing" 404, "text" a body that is not an image, "slow" the scene
    after `slow_s` seconds. `requests` lists the paths asked for. A context manager."""

    def __init__(self, scene: Scene | None = None, slow_s: float = 3.0) -> None:
        self.scene = scene or Scene()
        self.slow_s = slow_s
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_port

    def template(self, mode: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/{{z}}/{{x}}/{{y}}.png"

    def count(self, mode: str = "ok") -> int:
        with self._lock:
            return sum(path.startswith(f"/{mode}/") for path in self.requests)

    def __enter__(self) -> TileServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's name)
                with server._lock:
                    server.requests.append(self.path)
                try:
                    mode, z, x, y = self.path.strip("/").removesuffix(".png").split("/")
                    tile = (int(z), int(x), int(y))
                except ValueError:
                    return self._answer(400, b"bad tile path", "text/plain")
                if mode == "fail":
                    return self._answer(500, b"tile renderer crashed", "text/plain")
                if mode == "missing":
                    return self._answer(404, b"no such tile", "text/plain")
                if mode == "text":
                    return self._answer(200, b"<html>not a tile</html>", "text/html")
                if mode == "slow":
                    time.sleep(server.slow_s)
                self._answer(200, png(server.scene.render(*tile)), "image/png")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def log_message(self, *_args) -> None:
                pass

        return Handler
