"""Procedural synthetic scenes for training and evaluating SAM-style models.

A scene is a textured background with many objects painted over it in turn (later ones occlude
earlier ones). Some objects have parts, and some parts sub-parts, painted inside them in other
colours, so that one point is ambiguous between the whole, the part and the sub-part, as in
SAM's data. Every scene is a pure function of its seed and `SceneConfig`.

The masks are stored as a label map plus a tree: `labels[y, x]` is the deepest mask covering the
pixel and `parent[i]` the mask that contains mask i, so mask i is the set of pixels whose label is
i or a descendant of i. Masks are the *visible* pixels, after occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from segany.data.shapes import DRAWERS, FILLED_KINDS, KINDS, Stamp
from segany.data.textures import background, contrasting_colour, fill
from segany.errors import ConfigError

# Seeds of split s are SPLIT_OFFSETS[s] + [0, SPLIT_SIZE): the three ranges never meet.
SPLIT_SIZE = 10**8
SPLIT_OFFSETS = {"train": 0, "val": SPLIT_SIZE, "test": 2 * SPLIT_SIZE}

LEVELS = ("whole", "part", "sub-part")
_MIN_CONTRAST = 60.0  # RGB distance sought between an object and what it is painted over
_MAX_PART_FRACTION = 0.85  # a part covering more of its parent than this adds no new mask
_MIN_PARENT_RADIUS = 6.0  # px; smaller shapes get no parts


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like. Sizes given as fractions scale with the image's short side.

    Args:
        height, width: image size in pixels.
        num_objects: (low, high) inclusive range of the number of top-level objects drawn
            (fewer masks may remain after occlusion).
        object_size: (low, high) object radius as a fraction of the short side, log-uniform.
        thin_prob: chance that an object is a thin curve or line (1-4 px wide).
        small_prob: chance that an object is a small dot (radius 0.6-2 % of the short side).
        part_prob: chance that a filled object gets 1..max_parts parts.
        max_parts: most parts per object.
        subpart_prob: chance that a part gets sub-parts of its own.
        min_area: masks with fewer visible pixels than this are dropped.
        noise_std: (low, high) range of the std of the Gaussian pixel noise added to the image.
        blur_prob: chance that the finished image is softened by a 3x3 binomial blur.
    """

    height: int = 256
    width: int = 256
    num_objects: tuple[int, int] = (6, 16)
    object_size: tuple[float, float] = (0.05, 0.3)
    thin_prob: float = 0.12
    small_prob: float = 0.12
    part_prob: float = 0.55
    max_parts: int = 3
    subpart_prob: float = 0.4
    min_area: int = 16
    noise_std: tuple[float, float] = (0.0, 6.0)
    blur_prob: float = 0.4

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        for name in ("num_objects", "object_size", "noise_std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.height < 16 or self.width < 16:
            raise ConfigError(f"scene size {self.height}x{self.width} is too small; use >= 16 px")
        low, high = self.num_objects
        if not 0 <= low <= high:
            raise ConfigError(f"num_objects {self.num_objects} needs 0 <= low <= high")
        low, high = self.object_size
        if not 0 < low <= high <= 1:
            raise ConfigError(f"object_size {self.object_size} must satisfy 0 < low <= high <= 1")
        for name in ("thin_prob", "small_prob", "part_prob", "subpart_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} = {getattr(self, name)} is not a probability in [0, 1]")
        if self.thin_prob + self.small_prob > 1:
            raise ConfigError("thin_prob + small_prob must be at most 1")
        if self.max_parts < 1 or self.min_area < 1:
            raise ConfigError("max_parts and min_area must be at least 1")
        if not 0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ConfigError(f"noise_std {self.noise_std} must be (low, high), 0 <= low <= high")


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
    each pixel; a region's pixels are its shape minus what later regions cover."""

    def __init__(self, rng: np.random.Generator, config: SceneConfig) -> None:
        self.rng = rng
        self.config = config
        self.canvas = (config.height, config.width)
        self.image = background(rng, config.height, config.width)
        self.owner = np.full(self.canvas, -1, dtype=np.int32)
        self.parents: list[int] = []
        self.kinds: list[int] = []

    def paint(self, stamp: Stamp, kind: str, parent: int) -> int:
        rows, cols = stamp.window
        image, owner, mask = self.image[rows, cols], self.owner[rows, cols], stamp.mask
        under = image[mask].mean(axis=0)
        colour = contrasting_colour(self.rng, under, _MIN_CONTRAST)
        image[mask] = fill(self.rng, mask.shape[0], mask.shape[1], colour)[mask]
        region = len(self.parents)
        owner[mask] = region
        self.parents.append(parent)
        self.kinds.append(KINDS.index(kind))
        return region

    def add_object(self, cx: float, cy: float, radius: float, kind: str) -> None:
        stamp = DRAWERS[kind](self.rng, cx, cy, radius, self.canvas)
        if stamp is None:
            return
        region = self.paint(stamp, kind, -1)
        if (
            kind in FILLED_KINDS
            and radius >= _MIN_PARENT_RADIUS
            and self.rng.random() < self.config.part_prob
        ):
            self.add_parts(stamp, region, radius, self.config.max_parts, depth=1)

    def add_parts(self, outline: Stamp, parent: int, radius: float, most: int, depth: int) -> None:
        """1..`most` shapes inside `outline` (the parent's shape), clipped to it."""
        rng = self.rng
        ys, xs = np.nonzero(outline.mask)
        centre_y, centre_x = ys.mean(), xs.mean()
        for _ in range(int(rng.integers(1, most + 1))):
            # Of three random pixels of the parent take the most central, so that parts sit
            # inside their parent more often than on its rim.
            pick = rng.integers(len(ys), size=3)
            best = pick[np.argmin((ys[pick] - centre_y) ** 2 + (xs[pick] - centre_x) ** 2)]
            cx, cy = outline.x0 + xs[best], outline.y0 + ys[best]
            part_radius = radius * rng.uniform(0.25, 0.6)
            kind = "curve" if rng.random() < 0.1 else FILLED_KINDS[rng.integers(len(FILLED_KINDS))]
            drawn = DRAWERS[kind](rng, cx, cy, part_radius, self.canvas)
            stamp = drawn.intersect(outline) if drawn is not None else None
            if stamp is None:
                continue
            region = self.paint(stamp, kind, parent)
            if (
                depth == 1
                and kind != "curve"
                and part_radius >= _MIN_PARENT_RADIUS
                and rng.random() < self.config.subpart_prob
            ):
                self.add_parts(stamp, region, part_radius, 2, depth=2)


def make_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """The scene of `seed` (any int >= 0; see `split_seeds`) under `config` (default
    `SceneConfig()`): the same seed and config always give the same scene."""
    config = SceneConfig() if config is None else config
    rng = np.random.default_rng(seed)
    painter = _Painter(rng, config)
    height, width = config.height, config.width
    short = min(height, width)

    count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    low, high = np.log(config.object_size[0]), np.log(config.object_size[1])
    radii = short * np.exp(rng.uniform(low, high, count))
    # Mostly large objects first, so small ones are not all buried; the jitter keeps some
    # large objects over small ones.
    radii = radii[np.argsort(-radii * rng.lognormal(0.0, 0.6, count))]
    for radius in radii:
        cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height
        draw = rng.random()
        if draw < config.thin_prob:
            painter.add_object(cx, cy, radius, "curve")
        elif draw < config.thin_prob + config.small_prob:
            painter.add_object(cx, cy, max(short * rng.uniform(0.006, 0.02), 1.5), "dot")
        else:
            painter.add_object(cx, cy, radius, FILLED_KINDS[rng.integers(len(FILLED_KINDS))])

    image = _finish_image(rng, painter.image, config)
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
