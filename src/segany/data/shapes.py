"""Random shapes for synthetic scenes, rasterised as *stamps*.

A stamp is a bool mask over a window of the canvas, so a shape costs in proportion to its own
size, not the image's. Coordinates are canvas pixels, xy, a pixel's index being its centre.
Every `draw_*` function takes the generator, the shape's centre and its radius (half of its
largest extent, pixels) and returns a stamp, or None when the shape falls off the canvas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Shapes with an inside large enough to hold parts; "curve" and "dot" are thin and small ones.
FILLED_KINDS = ("ellipse", "rectangle", "polygon", "star", "blob", "ring")
KINDS = (*FILLED_KINDS, "curve", "dot")


@dataclass(frozen=True)
class Stamp:
    """A bool `mask` (h, w) whose top-left pixel is canvas pixel (y0, x0)."""

    y0: int
    x0: int
    mask: np.ndarray

    @property
    def window(self) -> tuple[slice, slice]:
        """Row and column slices of the canvas that the stamp covers."""
        h, w = self.mask.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def intersect(self, other: Stamp) -> Stamp | None:
        """The pixels in both stamps (over the overlap of the two windows), or None if none."""
        y0, x0 = max(self.y0, other.y0), max(self.x0, other.x0)
        y1 = min(self.y0 + self.mask.shape[0], other.y0 + other.mask.shape[0])
        x1 = min(self.x0 + self.mask.shape[1], other.x0 + other.mask.shape[1])
        if y1 <= y0 or x1 <= x0:
            return None
        a = self.mask[y0 - self.y0 : y1 - self.y0, x0 - self.x0 : x1 - self.x0]
        b = other.mask[y0 - other.y0 : y1 - other.y0, x0 - other.x0 : x1 - other.x0]
        both = a & b
        return Stamp(y0, x0, both) if both.any() else None


Canvas = tuple[int, int]  # (height, width)
Drawer = Callable[[np.random.Generator, float, float, float, Canvas], "Stamp | None"]


def _window(cx: float, cy: float, reach: float, canvas: Canvas) -> tuple[int, int, int, int] | None:
    """Canvas rows [y0, y1) and columns [x0, x1) within `reach` px of (cx, cy), or None."""
    height, width = canvas
    y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
    x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
    if y1 <= y0 or x1 <= x0:
        return None
    return y0, y1, x0, x1


def _rotated_frame(
    box: tuple[int, int, int, int], cx: float, cy: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Window pixel coordinates in a frame centred on (cx, cy), turned by `angle`: u, v (h, w)."""
    y0, y1, x0, x1 = box
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)  # (h, 1)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)  # (1, w)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return xs * c + ys * s, ys * c - xs * s


def _stamp(box: tuple[int, int, int, int], mask: np.ndarray) -> Stamp | None:
    return Stamp(box[0], box[2], mask) if mask.any() else None


def draw_ellipse(rng, cx, cy, radius, canvas, min_aspect=0.35) -> Stamp | None:
    box = _window(cx, cy, radius + 1, canvas)
    if box is None:
        return None
    rx, ry = radius, radius * rng.uniform(min_aspect, 1.0)
    u, v = _rotated_frame(box, cx, cy, rng.uniform(0, np.pi))
    return _stamp(box, (u / rx) ** 2 + (v / ry) ** 2 <= 1.0)


def draw_dot(rng, cx, cy, radius, canvas) -> Stamp | None:
    return draw_ellipse(rng, cx, cy, max(radius, 1.0), canvas, min_aspect=0.6)


def draw_rectangle(rng, cx, cy, radius, canvas) -> Stamp | None:
    """A rotated rectangle with rounded corners (corner radius from 0 to half the short side)."""
    box = _window(cx, cy, radius + 1, canvas)
    if box is None:
        return None
    # Half sides chosen so the corners stay within `radius` of the centre.
    diag_angle = rng.uniform(0.2, np.pi / 4)
    hx, hy = radius * np.cos(diag_angle), radius * np.sin(diag_angle)
    r = rng.uniform(0.0, 0.5) * hy
    u, v = _rotated_frame(box, cx, cy, rng.uniform(0, np.pi))
    # Signed distance to a rounded rectangle: distance to the inner rectangle, minus r.
    qx, qy = np.abs(u) - (hx - r), np.abs(v) - (hy - r)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    return _stamp(box, outside <= r)


def polygon_mask(box: tuple[int, int, int, int], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd fill of the polygon with vertices (xs, ys) (canvas px) over a window: (h, w)."""
    y0, y1, x0, x1 = box
    py = np.arange(y0, y1, dtype=np.float64)[:, None]  # (h, 1)
    px = np.arange(x0, x1, dtype=np.float64)[None, :]  # (1, w)
    inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for xa, ya, xb, yb in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1), strict=True):
        spans = (ya > py) != (yb > py)  # (h, 1): rows this edge crosses
        if not spans.any() or ya == yb:
            continue
        x_cross = xa + (py - ya) * ((xb - xa) / (yb - ya))  # (h, 1)
        inside ^= spans & (px < x_cross)
    return inside


def _radial_polygon(rng, cx, cy, radii, canvas) -> Stamp | None:
    """A polygon with vertices at evenly spread (jittered) angles and the given radii."""
    n = len(radii)
    angles = rng.uniform(0, 2 * np.pi) + (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n
    box = _window(cx, cy, float(np.max(radii)) + 1, canvas)
    if box is None:
        return None
    return _stamp(box, polygon_mask(box, cx + radii * np.cos(angles), cy + radii * np.sin(angles)))


def draw_polygon(rng, cx, cy, radius, canvas) -> Stamp | None:
    n = int(rng.integers(3, 9))
    return _radial_polygon(rng, cx, cy, radius * rng.uniform(0.55, 1.0, n), canvas)


def draw_star(rng, cx, cy, radius, canvas) -> Stamp | None:
    n = int(rng.integers(4, 9))
    radii = np.full(2 * n, float(radius))
    radii[1::2] *= rng.uniform(0.3, 0.6)
    return _radial_polygon(rng, cx, cy, radii, canvas)


def draw_blob(rng, cx, cy, radius, canvas) -> Stamp | None:
    """An organic outline: radius(angle) = r0 (1 + a few random low harmonics)."""
    box = _window(cx, cy, radius + 1, canvas)
    if box is None:
        return None
    harmonics = np.arange(2, 6)
    amplitude = rng.uniform(0, 1, len(harmonics)) / harmonics
    amplitude *= rng.uniform(0.15, 0.45) / amplitude.sum()  # outline stays within 0.55-1.45 r0
    phase = rng.uniform(0, 2 * np.pi, len(harmonics))
    r0 = radius / 1.45
    u, v = _rotated_frame(box, cx, cy, 0.0)
    theta = np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k, a, p in zip(harmonics, amplitude, phase, strict=True):
        edge += np.float32(a) * np.cos(k * theta + np.float32(p))
    return _stamp(box, u * u + v * v <= (r0 * edge) ** 2)


def draw_ring(rng, cx, cy, radius, canvas) -> Stamp | None:
    """An elliptical annulus: the hole shows what lies under it."""
    box = _window(cx, cy, radius + 1, canvas)
    if box is None:
        return None
    rx, ry = radius, radius * rng.uniform(0.5, 1.0)
    u, v = _rotated_frame(box, cx, cy, rng.uniform(0, np.pi))
    d = (u / rx) ** 2 + (v / ry) ** 2
    hole = rng.uniform(0.3, 0.7) ** 2
    return _stamp(box, (d <= 1.0) & (d > hole))


def _disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (dy, dx) offsets of the pixels within `radius` of a pixel (itself included)."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dy**2 + dx**2 <= radius**2
    return dy[keep], dx[keep]


def draw_curve(rng, cx, cy, radius, canvas, width: float | None = None) -> Stamp | None:
    """A thin cubic Bezier stroke (a straight line one time in four), 1 to 4 px wide."""
    width = rng.uniform(1.0, 4.0) if width is None else width
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = np.array([cx, cy])
    start, end = centre - radius * direction, centre + radius * direction
    bend = 0.0 if rng.random() < 0.25 else 0.8
    c1 = start + (end - start) / 3 + normal * radius * rng.uniform(-bend, bend)
    c2 = start + 2 * (end - start) / 3 + normal * radius * rng.uniform(-bend, bend)
    # Samples every <= 0.5 px along the (at most 3-radius-long) control polygon keep it connected.
    t = np.linspace(0.0, 1.0, int(np.ceil(6 * radius / 0.5)) + 2)[:, None]  # (n, 1)
    points = (
        (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end
    )  # (n, 2) xy
    dy, dx = _disc_offsets(max(width / 2, 0.5))
    ys = np.rint(points[:, 1])[:, None].astype(np.int64) + dy  # (n, k)
    xs = np.rint(points[:, 0])[:, None].astype(np.int64) + dx
    height, width_px = canvas
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width_px)
    if not keep.any():
        return None
    ys, xs = ys[keep], xs[keep]
    y0, x0 = int(ys.min()), int(xs.min())
    mask = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), dtype=bool)
    mask[ys - y0, xs - x0] = True
    return Stamp(y0, x0, mask)


DRAWERS: dict[str, Drawer] = {
    "ellipse": draw_ellipse,
    "rectangle": draw_rectangle,
    "polygon": draw_polygon,
    "star": draw_star,
    "blob": draw_blob,
    "ring": draw_ring,
    "curve": draw_curve,
    "dot": draw_dot,
}
assert set(DRAWERS) == set(KINDS)
