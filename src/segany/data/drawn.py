"""Drawn scenes: a second scene generator, written apart from `segany.data.synthetic`, in the
style of the README's sample picture (`examples/sample.png`) rather than of the yardstick.

A drawn scene is a 640 x 480 picture: a soft two-colour gradient for a sky, often a ground band
across the bottom, and 3 to 7 flat-coloured shapes (discs, ellipses, rounded boxes, triangles,
convex polygons) that overlap, later ones in front. Some shapes carry one part painted inside
them (a highlight, a window, a band). Everything is drawn at twice the size and averaged down,
so edges are antialiased as a drawing program's are, and nothing is noisy, blurred or textured.

What differs from the yardstick's scenes on purpose: the picture is not square, shapes are big
and few, they touch and occlude one another far more than they nest, most have no parts, and
the background is one smooth gradient with a ground object. A model that only learned the
yardstick's habits (for example "a differently coloured neighbour is my parent") shows it here:
`drawn:` is the check on "scenes that segany's generator never made" (issue 13).

Masks: every shape's visible pixels (its parts included) and every part's, with `parent` set;
the ground band is an object; the sky is no mask. A mask pixel is one at least half covered at
the doubled size. Masks under 100 px are left out (with their parts), and so is a part that
covers more than 85 % of its parent (the same mask twice).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from segany.data.sample import DenseMasks, Sample
from segany.data.synthetic import split_seeds

WIDTH, HEIGHT = 640, 480
SUPERSAMPLE = 2
MIN_AREA = 100  # px at 640 x 480
MAX_PART_SHARE = 0.85
_STREAM = 0xD7A3  # keeps drawn scenes' random streams apart from the synthetic generator's
SHAPES = ("disc", "ellipse", "box", "triangle", "polygon")
PARTS = ("highlight", "window", "band")


@dataclass
class DrawnScene:
    """One drawn scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        masks: (M, H, W) bool; a shape's mask includes its part's.
        parent: (M,) int16, the index of the mask containing mask i (< i), -1 for objects.
        kinds: (M,) the shape or part kind of each mask ("ground" for the ground band).
    """

    image: np.ndarray
    masks: np.ndarray
    parent: np.ndarray
    kinds: list[str]


def make_drawn_scene(seed: int) -> DrawnScene:
    """The drawn scene of `seed`, the same for the same seed on every machine."""
    rng = np.random.default_rng([_STREAM, seed])
    k = SUPERSAMPLE
    height, width = HEIGHT * k, WIDTH * k
    canvas = _gradient(rng, height, width)  # (kH, kW, 3) float32
    owner = np.full((height, width), -1, dtype=np.int16)  # which region painted each pixel
    parents: list[int] = []
    kinds: list[str] = []
    colours: list[np.ndarray] = [canvas[0, 0], canvas[-1, -1]]

    def paint(region: np.ndarray, colour: np.ndarray, kind: str, parent: int) -> int:
        canvas[region] = colour
        owner[region] = len(kinds)
        parents.append(parent)
        kinds.append(kind)
        colours.append(colour)
        return len(kinds) - 1

    if rng.random() < 0.7:
        top = int(height * rng.uniform(0.68, 0.88))
        ground = np.zeros((height, width), dtype=bool)
        ground[top:] = True
        paint(ground, _colour(rng, colours, value=(0.35, 0.7)), "ground", -1)
    for _ in range(int(rng.integers(3, 8))):
        kind = str(rng.choice(SHAPES))
        outline = _shape(rng, kind, height, width)
        if not outline.any():
            continue
        index = paint(outline, _colour(rng, colours), kind, -1)
        if rng.random() < 0.35:
            part_kind = str(rng.choice(PARTS))
            part = _part(rng, part_kind, outline) & outline
            if part.any():
                light = part_kind == "highlight"
                value = (0.9, 1.0) if light else (0.2, 0.6)
                saturation = (0.0, 0.2) if light else (0.3, 0.9)
                paint(part, _colour(rng, colours, value, saturation), part_kind, index)
    image = _shrink(canvas, k)
    masks, parent, kept = _visible_masks(owner, np.array(parents, dtype=np.int16), k)
    return DrawnScene(
        image=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        masks=masks,
        parent=parent,
        kinds=[kinds[i] for i in kept],
    )


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32: a light colour at the top turning into another at the bottom, a little
    shifted from left to right."""
    top = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.1, 0.45), rng.uniform(0.8, 1.0))
    bottom = _hsv(rng.uniform(0.0, 1.0), rng.uniform(0.05, 0.35), rng.uniform(0.75, 0.95))
    shift = rng.uniform(-25, 25, size=3).astype(np.float32)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    s = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    return ((1 - t) * top + t * bottom + s * shift).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255


def _colour(
    rng: np.random.Generator,
    used: list[np.ndarray],
    value: tuple[float, float] = (0.45, 0.95),
    saturation: tuple[float, float] = (0.4, 0.9),
) -> np.ndarray:
    """A flat colour at least a little apart (RGB distance 60) from every colour already used,
    when one is found in 20 tries."""
    best, best_gap = None, -1.0
    for _ in range(20):
        colour = _hsv(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
        gap = min(float(np.linalg.norm(colour - other)) for other in used)
        if gap >= 60:
            return colour
        if gap > best_gap:
            best, best_gap = colour, gap
    return best


def _shape(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """(H, W) bool outline of one shape, mostly inside the picture; sizes in doubled pixels."""
    radius = float(np.exp(rng.uniform(np.log(0.07), np.log(0.3)))) * height
    cx = rng.uniform(0.1, 0.9) * width
    cy = rng.uniform(0.15, 0.85) * height
    layer = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    if kind == "disc":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=1)
    elif kind == "ellipse":
        rx, ry = radius, radius * rng.uniform(0.45, 0.9)
        if rng.random() < 0.5:
            rx, ry = ry, rx
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=1)
    elif kind == "box":
        rx, ry = radius * rng.uniform(0.6, 1.2), radius * rng.uniform(0.6, 1.2)
        corner = min(rx, ry) * rng.uniform(0.0, 0.4)
        draw.rounded_rectangle((cx - rx, cy - ry, cx + rx, cy + ry), radius=corner, fill=1)
    else:
        sides = 3 if kind == "triangle" else int(rng.integers(5, 9))
        # A triangle draws these too and replaces them below: the random stream, and so every
        # scene stage 12 trained and was measured on, stays as it was.
        angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
        if kind == "triangle":  # keep every angle open: vertices at least 70 degrees apart
            angles = (
                rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.1, 4.2]) + rng.uniform(-0.4, 0.4, 3)
            )
        draw.polygon([(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles], fill=1)
    return np.asarray(layer, dtype=bool)


def _part(rng: np.random.Generator, kind: str, outline: np.ndarray) -> np.ndarray:
    """(H, W) bool: a part inside `outline` (clipped to it by the caller): a small light
    highlight, a window (a box well inside), or a band across the shape."""
    ys, xs = np.nonzero(outline)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    layer = Image.new("1", (outline.shape[1], outline.shape[0]), 0)
    draw = ImageDraw.Draw(layer)
    if kind == "band":
        top = y0 + h * rng.uniform(0.3, 0.6)
        draw.rectangle((x0, top, x1, top + h * rng.uniform(0.12, 0.25)), fill=1)
    else:
        share = rng.uniform(0.12, 0.22) if kind == "highlight" else rng.uniform(0.25, 0.45)
        ry, rx = h * share / 2, w * share / 2
        i = int(rng.integers(len(ys)))  # a pixel of the shape, moved inward from the rim
        cy = ys[i] + 0.5 * ((y0 + y1) / 2 - ys[i])
        cx = xs[i] + 0.5 * ((x0 + x1) / 2 - xs[i])
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        if kind == "highlight":
            draw.ellipse(box, fill=1)
        else:
            draw.rounded_rectangle(box, radius=min(rx, ry) * 0.3, fill=1)
    return np.asarray(layer, dtype=bool)


def _shrink(array: np.ndarray, k: int) -> np.ndarray:
    """Averages k x k blocks: (kH, kW, ...) -> (H, W, ...)."""
    h, w = array.shape[0] // k, array.shape[1] // k
    return array.reshape(h, k, w, k, *array.shape[2:]).mean(axis=(1, 3))


def _visible_masks(
    owner: np.ndarray, parents: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Each region's visible pixels (with its parts') at the shrunk size, the small and the
    duplicate ones left out: ((M, H, W) bool, (M,) int16 parents renumbered, kept region ids)."""
    n = len(parents)
    kept: list[int] = []
    renumber = np.full(n, -1, dtype=np.int16)
    masks: list[np.ndarray] = []
    for r in range(n):
        parent = int(parents[r])
        if parent >= 0 and renumber[parent] < 0:
            continue  # its shape was left out
        covered = owner == r
        children = np.nonzero(parents == r)[0]
        for child in children:
            covered |= owner == child
        mask = _shrink(covered.astype(np.float32), k) >= 0.5
        area = int(mask.sum())
        if area < MIN_AREA:
            continue
        if parent >= 0 and area > MAX_PART_SHARE * masks[renumber[parent]].sum():
            continue
        renumber[r] = len(kept)
        kept.append(r)
        masks.append(mask)
    shape = (0, owner.shape[0] // k, owner.shape[1] // k)
    stacked = np.stack(masks) if masks else np.zeros(shape, dtype=bool)
    parent_ids = np.array(
        [renumber[parents[r]] if parents[r] >= 0 else -1 for r in kept], dtype=np.int16
    )
    return stacked, parent_ids, kept


class DrawnScenes:
    """The first `count` drawn scenes of a split, each drawn when indexed (about 0.1 s).
    `dataset[i]` is a `Sample` with dense masks and `parent` set, named "drawn:SPLIT:SEED"."""

    def __init__(self, split: str, count: int) -> None:
        self.split = split
        # The yardstick's seed ranges per split; the generators' random streams differ.
        self.seeds = split_seeds(split, count)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> Sample:
        seed = self.seeds[index]
        scene = make_drawn_scene(seed)
        return Sample(
            image=scene.image,
            masks=DenseMasks(scene.masks),
            name=f"drawn:{self.split}:{seed}",
            parent=scene.parent,
        )
