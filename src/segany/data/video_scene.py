"""The pieces of a synthetic video (`segany.data.synthetic_video` draws them): `VideoConfig`,
one object's look and path (`_Mover`), and `SyntheticVideo`, which renders any frame and its
ground truth on demand. Pixel frame: x right, y down, pixel (x, y) centred at integer x, y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from segany.data.shapes import DRAWERS
from segany.errors import ConfigError, DataError
from segany.sequences import ArraySequence, FrameSequence

HELD_OUT_START = 10_000  # seeds >= this are held out: "test" photos; below: "val" photos
PROMPT_AREA = 400  # px visible on the prompt frame, at REFERENCE_SIZE; scales with the area
REFERENCE_SIZE = (480, 640)  # (H, W)
FPS = 25.0


@dataclass(frozen=True)
class VideoConfig:
    """What the videos look like. Lengths are fractions of the frame's short side.

    num_objects: (low, high) objects tracked, inclusive. object_size: (low, high) object radius
    at its largest. speed: (low, high) object speed per frame. scale_swing: an object's scale
    varies between 1 - scale_swing and 1 of its largest. spin: most turning, degrees per frame.
    edge_reach: (low, high) how far past the frame's edge an object's path reaches, in object
    diameters (0: it stays inside; 0.5: half of it may leave). exit_prob: chance that an
    object's path reaches a full 1.25 diameters past the edge (it leaves and comes back).
    pan_speed: (low, high) camera pan per frame. distractors: (low, high) untracked shapes in the
    background. noise_std: (low, high) sensor noise std, 0-255 levels. min_contrast: RGB
    distance sought between an object's mean colour and the background's. texture_contrast:
    an object's photo texture is scaled about its mean colour by this (1: the photo's own
    contrast; less: fewer strong edges inside an object, which a model may take for parts).
    kinds: the shapes drawn (names of `segany.data.shapes.DRAWERS`).
    """

    num_objects: tuple[int, int] = (1, 3)
    object_size: tuple[float, float] = (0.08, 0.2)
    speed: tuple[float, float] = (0.006, 0.02)
    scale_swing: float = 0.3
    spin: float = 1.5
    edge_reach: tuple[float, float] = (-0.1, 0.45)
    exit_prob: float = 0.25
    pan_speed: tuple[float, float] = (0.001, 0.006)
    distractors: tuple[int, int] = (0, 3)
    noise_std: tuple[float, float] = (0.0, 4.0)
    min_contrast: float = 50.0
    texture_contrast: float = 1.0
    kinds: tuple[str, ...] = ("ellipse", "rectangle", "polygon", "star", "blob")

    def __post_init__(self) -> None:
        for name in ("num_objects", "object_size", "speed", "edge_reach", "pan_speed"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "distractors", tuple(self.distractors))
        object.__setattr__(self, "noise_std", tuple(self.noise_std))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if not 1 <= self.num_objects[0] <= self.num_objects[1] <= 255:
            raise ConfigError(f"num_objects {self.num_objects} needs 1 <= low <= high <= 255")
        if not 0 < self.object_size[0] <= self.object_size[1] <= 0.5:
            raise ConfigError(f"object_size {self.object_size} needs 0 < low <= high <= 0.5")
        for name in ("speed", "pan_speed", "noise_std", "edge_reach"):
            low, high = getattr(self, name)
            if low > high or (name != "edge_reach" and low < 0):
                raise ConfigError(f"{name} {(low, high)} needs 0 <= low <= high")
        if not 0 <= self.texture_contrast <= 1:
            raise ConfigError(f"texture_contrast {self.texture_contrast} is not in [0, 1]")
        if not 0 <= self.scale_swing < 1 or not 0 <= self.exit_prob <= 1 or self.spin < 0:
            raise ConfigError("scale_swing needs [0, 1), exit_prob [0, 1] and spin >= 0")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ConfigError(f"distractors {self.distractors} needs 0 <= low <= high")
        unknown = sorted(set(self.kinds) - set(DRAWERS))
        if not self.kinds or unknown:
            raise ConfigError(f"unknown shape kinds {unknown}; choose from {sorted(DRAWERS)}")


def _fold(x: float, lo: float, hi: float) -> float:
    """`x` reflected into [lo, hi] (a path that bounces between the two); fold(x) = x inside."""
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    r = (x - lo) % (2 * span)
    return lo + (2 * span - r if r > span else r)


@dataclass(frozen=True)
class _Mover:
    """One object's look and path. template: (S, S, 4) uint8 RGBA, the shape (alpha) over a
    photo crop, its centre at pixel (S - 1) / 2; radius: px at scale 1. The centre at frame t is
    `meet + direction * speed * (t - t_meet)` plus a sideways wobble, folded into `bounds`
    (x0, x1, y0, y1) so that the path bounces inside them."""

    kind: str
    template: Image.Image
    radius: float
    meet: tuple[float, float]
    t_meet: float
    direction: tuple[float, float]
    speed: float
    wobble: tuple[float, float]  # (amplitude px, angular frequency per frame)
    bounds: tuple[float, float, float, float]
    scale: tuple[float, float, float]  # (swing, angular frequency, phase)
    angle: tuple[float, float, float]  # (start rad, rad per frame, sway rad)
    depth: float  # nearer objects (larger depth) paint over farther ones

    def centre(self, t: float) -> tuple[float, float]:
        dx, dy = self.direction
        run = self.speed * (t - self.t_meet)
        side = self.wobble[0] * np.sin(self.wobble[1] * (t - self.t_meet))
        x, y = self.meet[0] + dx * run - dy * side, self.meet[1] + dy * run + dx * side
        x0, x1, y0, y1 = self.bounds
        return _fold(x, x0, x1), _fold(y, y0, y1)

    def pose(self, t: float) -> tuple[float, float, float, float]:
        """(cx, cy, scale, angle rad) at frame t."""
        swing, omega, phase = self.scale
        scale = 1.0 - swing * (0.5 + 0.5 * np.sin(omega * t + phase))
        start, rate, sway = self.angle
        return (*self.centre(t), scale, start + rate * t + sway * np.sin(0.05 * t))

    def place(self, t: float, canvas: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
        """The object on frame t: (y0, x0, rgba) with rgba (h, w, 4) float32 over the window
        of the canvas at rows y0.., columns x0.., or None when it is off the canvas."""
        cx, cy, scale, angle = self.pose(t)
        reach = scale * self.radius + 2
        height, width = canvas
        y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
        x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
        if y1 <= y0 or x1 <= x0:
            return None
        # PIL's affine map takes window pixel (x, y) to template (a x + b y + c, d x + e y + f):
        # undo the turn and the scale about the object's centre.
        c, s = np.cos(angle) / scale, np.sin(angle) / scale
        middle = (self.template.width - 1) / 2
        ox, oy = x0 - cx, y0 - cy
        coefficients = (c, s, c * ox + s * oy + middle, -s, c, -s * ox + c * oy + middle)
        warped = self.template.transform(
            (x1 - x0, y1 - y0), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR
        )
        return y0, x0, np.asarray(warped, dtype=np.float32)


class SyntheticVideo:
    """One synthetic video: `len(video)` frames of `height` x `width` px.

    Attributes:
        seed, config: what made it. objects: the object ids, (1, .., K). kinds: id -> shape
        name. prompt_frames: id -> the object's prompt frame (see the module docstring).
    Frames are rendered when asked for (`frame`, `mask`, `render`); `frames` and `masks` stack
    them all.
    """

    def __init__(
        self,
        seed: int,
        length: int,
        size: tuple[int, int],
        config: VideoConfig,
        background: np.ndarray,
        movers: list[_Mover],
        pan: tuple[float, float, float, float],
        noise_std: float,
    ) -> None:
        self.seed, self.length, self.config = seed, length, config
        self.height, self.width = size
        self._background = background  # (H + 2 margin, W + 2 margin, 3) uint8
        self._movers = movers  # movers[k] is object k + 1
        self._pan = pan  # (x at frame 0, y at frame 0, x speed, y speed), px
        self._noise_std = noise_std
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None
        self.prompt_frames: dict[int, int] = {}

    def __len__(self) -> int:
        return self.length

    @property
    def objects(self) -> tuple[int, ...]:
        return tuple(range(1, len(self._movers) + 1))

    @property
    def kinds(self) -> dict[int, str]:
        return {k + 1: mover.kind for k, mover in enumerate(self._movers)}

    @property
    def prompt_area(self) -> int:
        """Pixels an object shows on its prompt frame, at least (16 at the smallest)."""
        area = self.height * self.width / (REFERENCE_SIZE[0] * REFERENCE_SIZE[1])
        return max(16, round(PROMPT_AREA * area))

    def _check(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise DataError(f"a frame index must be an int, got {type(index).__name__}")
        if not 0 <= index < self.length:
            raise DataError(f"frame {index} is out of range: the video has {self.length} frames")
        return int(index)

    def render(self, index: int, rgb: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Frame `index`: ((H, W, 3) uint8 RGB or None when `rgb` is False, (H, W) uint8 ids)."""
        index = self._check(index)
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1], self._cached[2]
        x0, y0, vx, vy = self._pan
        margin_y = (self._background.shape[0] - self.height) / 2
        margin_x = (self._background.shape[1] - self.width) / 2
        ox = round(_fold(x0 + vx * index, 0, 2 * margin_x))
        oy = round(_fold(y0 + vy * index, 0, 2 * margin_y))
        image = None
        if rgb:
            image = self._background[oy : oy + self.height, ox : ox + self.width]
            image = image.astype(np.float32)
        ids = np.zeros((self.height, self.width), dtype=np.uint8)
        order = sorted(range(len(self._movers)), key=lambda k: self._movers[k].depth)
        for k in order:  # farthest first: nearer objects paint over
            placed = self._movers[k].place(index, (self.height, self.width))
            if placed is None:
                continue
            y, x, rgba = placed
            h, w = rgba.shape[:2]
            alpha = rgba[..., 3:] / 255.0  # (h, w, 1): soft edges, as a camera blurs them
            ids[y : y + h, x : x + w][rgba[..., 3] >= 127.5] = k + 1
            if image is not None:
                under = image[y : y + h, x : x + w]
                under += alpha * (rgba[..., :3] - under)
        if image is not None:
            if self._noise_std > 0:
                noise = np.random.default_rng([self.seed, index]).standard_normal(
                    image.shape, dtype=np.float32
                )
                image += np.float32(self._noise_std) * noise
            image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
            self._cached = (index, image, ids)
        return image, ids

    def silhouette(self, index: int, object_id: int) -> np.ndarray:
        """(H, W) bool: object `object_id`'s whole shape on frame `index`, occluded parts
        included (the parts off the frame left out); `mask(index) == object_id` is its
        visible part."""
        index = self._check(index)
        if object_id not in self.objects:
            raise DataError(f"no object {object_id}; the video's objects are {self.objects}")
        shape = np.zeros((self.height, self.width), dtype=bool)
        placed = self._movers[object_id - 1].place(index, (self.height, self.width))
        if placed is not None:
            y, x, rgba = placed
            shape[y : y + rgba.shape[0], x : x + rgba.shape[1]] = rgba[..., 3] >= 127.5
        return shape

    def frame(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of frame `index`."""
        return self.render(index)[0]

    def mask(self, index: int) -> np.ndarray:
        """(H, W) uint8 object ids of frame `index` (0 background)."""
        return self.render(index, rgb=self._cached is not None and self._cached[0] == index)[1]

    @property
    def frames(self) -> np.ndarray:
        """(T, H, W, 3) uint8: every frame (memory grows with the length; see `sequence`)."""
        return np.stack([self.frame(i) for i in range(self.length)])

    @property
    def masks(self) -> np.ndarray:
        """(T, H, W) uint8: every frame's object ids."""
        return np.stack([self.mask(i) for i in range(self.length)])

    def sequence(self, lazy: bool = False) -> FrameSequence:
        """The video as a `FrameSequence` for a tracker: an `ArraySequence` of `frames`, or with
        `lazy` one that renders each frame when read (flat memory for long videos)."""
        if lazy:
            return _RenderedSequence(self)
        return ArraySequence(self.frames, kind="video", fps=FPS)

    def _remove(self, object_id: int) -> None:
        """Drop an object (the later ones renumbered), before the video is handed out."""
        del self._movers[object_id - 1]
        self._cached = None


class _RenderedSequence(FrameSequence):
    """A `SyntheticVideo` as a `FrameSequence` rendering each frame when read."""

    fps = FPS

    def __init__(self, video: SyntheticVideo) -> None:
        super().__init__()
        self.video = video
        self.height, self.width = video.height, video.width

    def __len__(self) -> int:
        return len(self.video)

    def read_rgb(self, index: int) -> np.ndarray:
        return self.video.frame(index)
