"""Procedural synthetic scenes for training and evaluating SAM-style models.

A scene is a textured background with many objects painted over it in turn (later ones occlude
earlier ones). Some objects have parts, and some parts sub-parts, painted inside them in other
colours, so that one point is ambiguous between the whole, the part and the sub-part, as in
SAM's data. Every scene is a pure function of its seed and `SceneConfig`.

Two generators share this code. `SceneConfig()` (no `layout`) is v1, kept draw for draw so
that the figures measured on it stay reproducible: 256 px scenes, half of whose masks are under
16 x 16 px, parts near their parent's centre. `SceneConfig.v2()` is the yardstick of issue 13:
512 px scenes whose masks are mostly at least 24 x 24 px, parts anywhere in their parent, the
layout drawn from a random stream of its own so that a seed gives the same masks whether the
textures are procedural or photo crops (`textures="photo"`, see `photos`).

The masks are stored as a label map plus a tree: `labels[y, x]` is the deepest mask covering the
pixel and `parent[i]` the mask that contains mask i, so mask i is the set of pixels whose label is
i or a descendant of i. Masks are the *visible* pixels, after occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from segany.data.photos import PhotoTextures, photo_textures
from segany.data.scene_config import TEXTURES, Layout, SceneConfig  # noqa: F401  (re-exported)
from segany.data.shapes import DRAWERS, FILLED_KINDS, KINDS, Stamp, draw_curve
from segany.data.textures import background, contrasting_colour, fill
from segany.errors import ConfigError

# Seeds of split s are SPLIT_OFFSETS[s] + [0, SPLIT_SIZE): the three ranges never meet.
SPLIT_SIZE = 10**8
SPLIT_OFFSETS = {"train": 0, "val": SPLIT_SIZE, "test": 2 * SPLIT_SIZE}

LEVELS = ("whole", "part", "sub-part")
_MIN_CONTRAST = 60.0  # RGB distance sought between an object and what it is painted over
_MAX_PART_FRACTION = 0.85  # a part covering more of its parent than this adds no new mask
_MIN_PARENT_RADIUS = 6.0  # px; smaller shapes get no parts

# The v1 generator's fixed choices (what `Layout` sets for v2): part radius as a fraction of
# its parent's, dot radius as a fraction of the short side, curve width in px.
_V1_PART_SIZE = (0.25, 0.6)
_V1_DOT_SIZE = (0.006, 0.02)
_V1_CURVE_WIDTH = (1.0, 4.0)
# v2: a part's centre lies at least this many part radii inside its parent's rim, so that a
# part placed anywhere is not mostly clipped away by the parent's outline.
_PART_INSET = 0.3
_PART_TRIES = 3


@dataclass(frozen=True)
class Scene:
    """One synthetic image and its M masks.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) int16, the deepest mask covering each pixel, -1 where none does.
        parent: (M,) int16, the index of the mask containing mask i (always < i), -1 for whole
            objects.
        kind: (M,) int8 index into `shapes.KINDS` of the shape that made the mask.
        level: (M,) int8, 0 for whole objects, 1 for parts, 2 for sub-parts.
    """

    image: np.ndarray
    labels: np.ndarray
    parent: np.ndarray
    kind: np.ndarray
    level: np.ndarray

    @cached_property
    def masks(self) -> np.ndarray:
        """(M, H, W) bool; a whole object's mask includes its parts'."""
        return masks_from_labels(self.labels, self.parent)

    @property
    def kind_names(self) -> list[str]:
        return [KINDS[k] for k in self.kind]

    def __len__(self) -> int:
        return len(self.parent)


def masks_from_labels(labels: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """(H, W) int label map and (M,) parent indices -> (M, H, W) bool, mask i holding the pixels
    labelled i or any descendant of i."""
    m = len(parent)
    member = np.zeros((m, m + 1), dtype=bool)  # member[i, j + 1]: label j lies in mask i
    for j in range(m):
        i = j
        while i >= 0:
            member[i, j + 1] = True
            i = int(parent[i])
    return member[:, labels.astype(np.intp) + 1]  # (M, H, W)


def split_of_seed(seed: int) -> str:
    """The split ("train", "val" or "test") whose seed range holds `seed`; `ConfigError` for a
    seed in none (photo scenes take their photos from their seed's split)."""
    for split, offset in SPLIT_OFFSETS.items():
        if offset <= seed < offset + SPLIT_SIZE:
            return split
    raise ConfigError(f"seed {seed} is in no split's range; take seeds from split_seeds()")


def split_seeds(split: str, n: int, start: int = 0) -> range:
    """Seeds `start .. start + n - 1` of a split ("train", "val" or "test"); the splits' seed
    ranges are disjoint, so no scene is in two of them."""
    if split not in SPLIT_OFFSETS:
        raise ConfigError(f"unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}")
    if n < 0 or start < 0 or start + n > SPLIT_SIZE:
        raise ConfigError(f"a split holds seeds 0 .. {SPLIT_SIZE - 1}; got start={start}, n={n}")
    offset = SPLIT_OFFSETS[split]
    return range(offset + start, offset + start + n)


class _Painter:
    """Paints regions (objects, parts, sub-parts) onto the image and records which region owns
    each pixel; a region's pixels are its shape minus what later regions cover.

    `rng` draws the layout (shapes, places, sizes), `ink` the colours and textures: the same
    stream in v1, two streams in v2. `photos` replaces the procedural textures when given.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        config: SceneConfig,
        ink: np.random.Generator,
        photos: PhotoTextures | None = None,
    ) -> None:
        self.rng = rng
        self.ink = ink
        self.config = config
        self.photos = photos
        self.canvas = (config.height, config.width)
        height, width = self.canvas
        if photos is None:
            self.image = background(ink, height, width)
        else:
            self.image = photos.background(ink, height, width)
        self.owner = np.full(self.canvas, -1, dtype=np.int32)
        self.parents: list[int] = []
        self.kinds: list[int] = []
        short = min(self.canvas)
        layout = config.layout
        if layout is None:
            self.part_size, self.min_part_radius = _V1_PART_SIZE, 0.0
            self.dot_size, self.curve_width = _V1_DOT_SIZE, _V1_CURVE_WIDTH
            self.min_part_area, self.centre_free = 0.0, 0.0
        else:
            self.part_size, self.min_part_radius = layout.part_size, short * layout.min_part_radius
            self.dot_size = layout.dot_size
            self.curve_width = (short * layout.curve_width[0], short * layout.curve_width[1])
            self.min_part_area = short**2 * layout.min_part_area
            self.centre_free = layout.centre_free
        # Large enough to hold a part of at least min_part_radius (v1: a fixed 6 px).
        self.min_parent_radius = max(_MIN_PARENT_RADIUS, self.min_part_radius / self.part_size[1])

    def paint(self, stamp: Stamp, kind: str, parent: int) -> int:
        rows, cols = stamp.window
        image, owner, mask = self.image[rows, cols], self.owner[rows, cols], stamp.mask
        under = image[mask].mean(axis=0)
        if self.photos is None:
            colour = contrasting_colour(self.ink, under, _MIN_CONTRAST)
            image[mask] = fill(self.ink, mask.shape[0], mask.shape[1], colour)[mask]
        else:
            image[mask] = self.photos.fill(self.ink, mask, under, _MIN_CONTRAST)
        region = len(self.parents)
        owner[mask] = region
        self.parents.append(parent)
        self.kinds.append(KINDS.index(kind))
        return region

    def draw(self, kind: str, cx: float, cy: float, radius: float) -> Stamp | None:
        """The stamp of a `kind` shape centred at (cx, cy) px, or None when off the canvas."""
        if kind == "curve":
            # The same draw as draw_curve's own default width, so v1 scenes are unchanged.
            width = self.rng.uniform(*self.curve_width)
            return draw_curve(self.rng, cx, cy, radius, self.canvas, width=width)
        return DRAWERS[kind](self.rng, cx, cy, radius, self.canvas)

    def add_dot(self, cx: float, cy: float) -> None:
        short = min(self.canvas)
        self.add_object(cx, cy, max(short * self.rng.uniform(*self.dot_size), 1.5), "dot")

    def add_object(self, cx: float, cy: float, radius: float, kind: str) -> None:
        stamp = self.draw(kind, cx, cy, radius)
        if stamp is None:
            return
        region = self.paint(stamp, kind, -1)
        if (
            kind in FILLED_KINDS
            and radius >= self.min_parent_radius
            and self.rng.random() < self.config.part_prob
        ):
            self.add_parts(stamp, region, radius, self.config.max_parts, depth=1)

    def add_parts(self, outline: Stamp, parent: int, radius: float, most: int, depth: int) -> None:
        """1..`most` shapes inside `outline` (the parent's shape, of `radius` px), clipped to it."""
        ys, xs = np.nonzero(outline.mask)  # (K,) the parent's pixels, window frame
        if self.config.layout is None:
            centre = (ys.mean(), xs.mean())
        else:
            # (K,) distance of each parent pixel to the parent's rim (the canvas edge counts).
            inset = ndimage.distance_transform_edt(np.pad(outline.mask, 1))[1:-1, 1:-1][ys, xs]
        for _ in range(int(self.rng.integers(1, most + 1))):
            if self.config.layout is None:
                stamp, kind, part_radius = self._central_part(outline, ys, xs, centre, radius)
            else:
                stamp, kind, part_radius = self._anywhere_part(outline, ys, xs, inset, radius)
            if stamp is None:
                continue
            region = self.paint(stamp, kind, parent)
            if (
                depth == 1
                and kind != "curve"
                and part_radius >= self.min_parent_radius
                and self.rng.random() < self.config.subpart_prob
            ):
                self.add_parts(stamp, region, part_radius, 2, depth=2)

    def _central_part(
        self,
        outline: Stamp,
        ys: np.ndarray,
        xs: np.ndarray,
        centre: tuple[float, float],
        radius: float,
    ) -> tuple[Stamp | None, str, float]:
        """v1: of three random pixels of the parent the most central is the part's centre, so
        that parts sit inside their parent more often than on its rim."""
        pick = self.rng.integers(len(ys), size=3)
        best = pick[np.argmin((ys[pick] - centre[0]) ** 2 + (xs[pick] - centre[1]) ** 2)]
        part_radius = radius * self.rng.uniform(*self.part_size)
        kind = self._part_kind()
        return self._clipped(kind, outline, xs[best], ys[best], part_radius), kind, part_radius

    def _anywhere_part(
        self, outline: Stamp, ys: np.ndarray, xs: np.ndarray, inset: np.ndarray, radius: float
    ) -> tuple[Stamp | None, str, float]:
        """v2: the part's centre is a uniformly random parent pixel at least _PART_INSET part
        radii inside the parent's rim (its innermost pixels where the parent is thinner). A
        part that, clipped to its parent, covers under min_part_area px is drawn again, at most
        _PART_TRIES times in all; a curve part spans the parent (a band across it)."""
        deepest = int(np.argmax(inset))  # the parent's centre: where a 1-click protocol clicks
        for _ in range(_PART_TRIES):
            part_radius = max(radius * self.rng.uniform(*self.part_size), self.min_part_radius)
            # 0.8: more than the parent's one deepest pixel stays in play.
            needed = min(_PART_INSET * part_radius, 0.8 * float(inset.max()))
            room = np.flatnonzero(inset >= needed)
            if self.rng.random() < self.centre_free:
                # Centres farther than the part's reach from the parent's deepest pixel leave
                # that pixel uncovered (shapes stay within their radius of their centre).
                away = (ys[room] - ys[deepest]) ** 2 + (xs[room] - xs[deepest]) ** 2
                clear = room[away > (part_radius + 1) ** 2]
                room = clear if len(clear) else room
            best = room[self.rng.integers(len(room))]
            kind = self._part_kind()
            reach = radius if kind == "curve" else part_radius
            stamp = self._clipped(kind, outline, xs[best], ys[best], reach)
            if stamp is not None and np.count_nonzero(stamp.mask) >= self.min_part_area:
                return stamp, kind, part_radius
        return None, kind, part_radius

    def _part_kind(self) -> str:
        rng = self.rng
        return "curve" if rng.random() < 0.1 else FILLED_KINDS[rng.integers(len(FILLED_KINDS))]

    def _clipped(self, kind: str, outline: Stamp, x: int, y: int, radius: float) -> Stamp | None:
        """A `kind` shape centred at window pixel (x, y) of `outline`, clipped to it."""
        drawn = self.draw(kind, outline.x0 + x, outline.y0 + y, radius)
        return drawn.intersect(outline) if drawn is not None else None


def make_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """The scene of `seed` (any int >= 0; see `split_seeds`) under `config` (default
    `SceneConfig()`): the same seed and config always give the same scene.

    Photo scenes (`config.textures == "photo"`) take their photos from the split whose seed
    range holds `seed`, so a test scene never shows a training photo; `ConfigError` for a
    seed of no split, `DataError` when scikit-image is missing.
    """
    config = SceneConfig() if config is None else config
    if config.layout is None:
        rng = ink = np.random.default_rng(seed)
    else:
        rng, ink = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    photos = photo_textures(split_of_seed(seed)) if config.textures == "photo" else None
    painter = _Painter(rng, config, ink, photos)
    height, width = config.height, config.width

    count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    low, high = np.log(config.object_size[0]), np.log(config.object_size[1])
    radii = min(height, width) * np.exp(rng.uniform(low, high, count))
    # Mostly large objects first, so small ones are not all buried; the jitter keeps some
    # large objects over small ones.
    radii = radii[np.argsort(-radii * rng.lognormal(0.0, 0.6, count))]
    for radius in radii:
        cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height
        draw = rng.random()
        if draw < config.thin_prob:
            painter.add_object(cx, cy, radius, "curve")
        elif draw < config.thin_prob + config.small_prob:
            painter.add_dot(cx, cy)
        else:
            painter.add_object(cx, cy, radius, FILLED_KINDS[rng.integers(len(FILLED_KINDS))])

    image = _finish_image(ink, painter.image, config)
    labels, parent, kind, level = _keep_masks(
        painter.owner, painter.parents, painter.kinds, config.min_area
    )
    return Scene(image=image, labels=labels, parent=parent, kind=kind, level=level)


def _finish_image(rng: np.random.Generator, image: np.ndarray, config: SceneConfig) -> np.ndarray:
    """Float (H, W, 3) -> uint8 with optional blur and pixel noise, as a camera would add."""
    if rng.random() < config.blur_prob:  # separable [1, 2, 1] / 4 blur, edges repeated
        padded = np.pad(image, ((1, 1), (0, 0), (0, 0)), mode="edge")
        image = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
        padded = np.pad(image, ((0, 0), (1, 1), (0, 0)), mode="edge")
        image = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    std = rng.uniform(*config.noise_std)
    if std > 0:
        image = image + np.float32(std) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _keep_masks(
    owner: np.ndarray, parents: list[int], kinds: list[int], min_area: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Painted regions -> kept masks: (H, W) int16 labels, (M,) parent, kind, level.

    A region is dropped when it shows fewer than `min_area` pixels (with its descendants), or
    when it is a part covering most of its parent (the same mask twice). A dropped part's pixels
    go to the nearest kept ancestor; a dropped whole object's pixels to no mask.
    """
    n = len(parents)
    parent_of = np.asarray(parents, dtype=np.int64)
    area = np.bincount(owner.ravel() + 1, minlength=n + 1)[1:].astype(np.int64)
    for r in range(n - 1, -1, -1):  # parts come after their parents: children first
        if parent_of[r] >= 0:
            area[parent_of[r]] += area[r]

    mask_of = np.full(n, -1, dtype=np.int64)  # the kept mask each region's pixels belong to
    mask_area: list[int] = []
    new_parent: list[int] = []
    new_kind: list[int] = []
    new_level: list[int] = []
    for r in range(n):
        home = mask_of[parent_of[r]] if parent_of[r] >= 0 else -1
        if parent_of[r] >= 0 and home < 0:
            continue  # inside a dropped whole object
        distinct = home < 0 or area[r] <= _MAX_PART_FRACTION * mask_area[home]
        if area[r] < min_area or not distinct:
            mask_of[r] = home
            continue
        mask_of[r] = len(new_parent)
        mask_area.append(int(area[r]))
        new_parent.append(int(home))
        new_kind.append(kinds[r])
        new_level.append(0 if home < 0 else new_level[home] + 1)

    lookup = np.concatenate([[-1], mask_of]).astype(np.int16)  # region id + 1 -> mask
    labels = lookup[owner + 1]
    return (
        labels,
        np.asarray(new_parent, dtype=np.int16),
        np.asarray(new_kind, dtype=np.int8),
        np.asarray(new_level, dtype=np.int8),
    )
