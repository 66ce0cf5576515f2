"""Colours and textures for synthetic scenes: backgrounds and object fills, float32 RGB 0-255.

Value noise is made with two small interpolation matrices, `rows @ grid @ cols.T`, so a
full-image noise field costs two thin matrix products instead of per-pixel lookups.
"""

from __future__ import annotations

import numpy as np

BACKGROUNDS = ("linear", "radial", "noise", "stripes", "checker")
FILLS = ("flat", "shaded", "linear", "radial", "stripes", "noise", "checker")


def _interpolation_matrix(size: int, cells: int) -> np.ndarray:
    """(size, cells + 1) weights taking `cells + 1` lattice values to `size` samples, with
    smooth-step blending between neighbours."""
    t = (np.arange(size, dtype=np.float32) + 0.5) * (cells / size)
    i = np.minimum(t.astype(np.int64), cells - 1)
    f = t - i
    s = f * f * (3 - 2 * f)
    m = np.zeros((size, cells + 1), dtype=np.float32)
    rows = np.arange(size)
    m[rows, i] = 1 - s
    m[rows, i + 1] = s
    return m


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, cells: float, octaves: int = 4
) -> np.ndarray:
    """(height, width) float32 in [0, 1]: value noise with `cells` lattice cells along the long
    side at the coarsest octave, each further octave twice as fine and half as strong."""
    total = np.zeros((height, width), dtype=np.float32)
    scale = max(height, width)
    amplitude = 1.0
    for octave in range(octaves):
        n = cells * 2**octave
        cy, cx = max(int(round(n * height / scale)), 1), max(int(round(n * width / scale)), 1)
        grid = rng.random((cy + 1, cx + 1), dtype=np.float32)
        field = _interpolation_matrix(height, cy) @ grid @ _interpolation_matrix(width, cx).T
        total += np.float32(amplitude) * field
        amplitude *= 0.5
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-6)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) float32 RGB; sometimes greyish, sometimes saturated."""
    colour = rng.uniform(0, 255, 3)
    grey = rng.random() ** 2  # pull towards grey by a random amount
    colour = (1 - grey) * colour + grey * colour.mean()
    return colour.astype(np.float32)


def contrasting_colour(
    rng: np.random.Generator, against: np.ndarray | None, min_distance: float, tries: int = 8
) -> np.ndarray:
    """A random colour at least `min_distance` (RGB Euclidean) from `against` (3,), if one of
    `tries` draws reaches it; otherwise the farthest draw."""
    if against is None:
        return random_colour(rng)
    best, best_distance = None, -1.0
    for _ in range(tries):
        colour = random_colour(rng)
        distance = float(np.linalg.norm(colour - against))
        if distance > best_distance:
            best, best_distance = colour, distance
        if distance >= min_distance:
            break
    return best


def _mix(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(h, w) weights in [0, 1], colours (3,) -> (h, w, 3) = a + t (b - a)."""
    return a + t[..., None] * (b - a)


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.arange(height, dtype=np.float32)[:, None],  # (h, 1)
        np.arange(width, dtype=np.float32)[None, :],  # (1, w)
    )


def _linear_field(rng, height, width) -> np.ndarray:
    """(h, w) in [0, 1] rising along a random direction across the window."""
    ys, xs = _coords(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    d = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))
    lo, hi = d.min(), d.max()
    return (d - lo) / max(hi - lo, 1e-6)


def _radial_field(rng, height, width) -> np.ndarray:
    ys, xs = _coords(height, width)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    d = np.sqrt((ys - np.float32(cy)) ** 2 + (xs - np.float32(cx)) ** 2)
    return np.minimum(d / np.float32(max(height, width) * rng.uniform(0.4, 1.0)), 1.0)


def _stripes_field(rng, height, width, period: float) -> np.ndarray:
    ys, xs = _coords(height, width)
    angle = rng.uniform(0, np.pi)
    t = (xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))) / np.float32(period)
    if rng.random() < 0.5:  # hard-edged bands
        return (np.floor(t) % 2).astype(np.float32)
    return 0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * t)


def _checker_field(rng, height, width, cell: float) -> np.ndarray:
    ys, xs = _coords(height, width)
    angle = rng.uniform(0, np.pi / 2)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = (xs * c + ys * s) / np.float32(cell), (ys * c - xs * s) / np.float32(cell)
    return ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(height, width, 3) float32: a gradient, noise, stripe or checker backdrop, with a faint
    noise overlay so no background is perfectly flat."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    side = max(height, width)
    a, b = random_colour(rng), random_colour(rng)
    if kind in ("stripes", "checker"):
        b = a + (b - a) * np.float32(rng.uniform(0.15, 0.45))  # textures, not objects
    if kind == "linear":
        t = _linear_field(rng, height, width)
    elif kind == "radial":
        t = _radial_field(rng, height, width)
    elif kind == "noise":
        t = fractal_noise(rng, height, width, cells=rng.uniform(2, 8))
    elif kind == "stripes":
        t = _stripes_field(rng, height, width, period=side * rng.uniform(0.02, 0.12))
    else:
        t = _checker_field(rng, height, width, cell=side * rng.uniform(0.03, 0.12))
    image = _mix(t, a, b)
    overlay = fractal_noise(rng, height, width, cells=rng.uniform(3, 12), octaves=3)
    image += (overlay[..., None] - 0.5) * np.float32(rng.uniform(5, 40))
    return image


def fill(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """(height, width, 3) float32 texture of an object of colour `base` (3,) over its window:
    flat, shaded, a gradient, stripes, noise or a checker between `base` and a nearby colour."""
    kind = FILLS[rng.integers(len(FILLS))]
    if kind == "flat":
        return np.broadcast_to(base, (height, width, 3))
    other = np.clip(base + rng.normal(0, 35, 3), 0, 255).astype(np.float32)
    side = max(height, width)
    if kind == "shaded":
        other = base * np.float32(rng.uniform(0.55, 0.85))  # the same colour in shadow
        t = _linear_field(rng, height, width)
    elif kind == "linear":
        t = _linear_field(rng, height, width)
    elif kind == "radial":
        t = _radial_field(rng, height, width)
    elif kind == "stripes":
        t = _stripes_field(rng, height, width, period=max(side * rng.uniform(0.08, 0.3), 3.0))
    elif kind == "noise":
        t = fractal_noise(rng, height, width, cells=rng.uniform(1.5, 5), octaves=3)
    else:
        t = _checker_field(rng, height, width, cell=max(side * rng.uniform(0.1, 0.3), 3.0))
    return _mix(t, base, other)
