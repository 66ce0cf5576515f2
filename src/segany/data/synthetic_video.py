"""Synthetic videos with ground truth: the yardstick of the trackers (issue 26).

A video is 1-3 objects cut from photographs (ellipses, rounded rectangles, polygons, stars and
blobs, each filled with a photo crop) moving over a textured background that the camera pans
across. The objects move along smooth paths, grow and shrink, turn a little, pass in front of
each other (every object after the first crosses the path of an earlier one at a random time,
so occlusion happens in every video with two objects or more) and run partly off the frame's
edges; some leave it entirely for a while and come back. The background also holds 0-3 untracked
photo shapes that look like the objects (distractors).

Every video is a pure function of its seed, length, size and `VideoConfig`, and each frame is
rendered on its own (`SyntheticVideo.frame(i)`), so a video of any length costs one frame of
memory. Frames are (H, W, 3) uint8 RGB; masks are (H, W) uint8 object-id maps (0 background,
1..K the objects' *visible* pixels after occlusion), in the frame's pixel frame (x right, y
down).

Seeds: `HELD_OUT_START` (10,000) and up are the held-out videos, textured with the "test" photos
of `segany.data.photos` (no training scene shows them); seeds 0-9,999 are for tuning and take
the "val" photos. `held_out_seeds(n)` gives the yardstick's seeds.

Each object is prompted on its *prompt frame*: the first frame on which at least `prompt_area`
of its pixels are visible (400 px at 640 x 480, scaled with the frame's area), so that a click
has something to land on. An object that never shows that much is left out of the video.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from segany.data.photos import PhotoTextures, photo_textures
from segany.data.shapes import DRAWERS
from segany.data.video_scene import (
    HELD_OUT_START,
    REFERENCE_SIZE,
    SyntheticVideo,
    VideoConfig,
    _Mover,
)
from segany.errors import ConfigError, DataError

__all__ = ["HELD_OUT_START", "SyntheticVideo", "VideoConfig", "held_out_seeds", "make_video"]

_TRIES = 8  # layouts drawn for one seed before giving up (an object must show prompt_area)


def held_out_seeds(n: int, start: int = 0) -> range:
    """The yardstick's seeds: `HELD_OUT_START + start` .. `+ start + n - 1`."""
    if n < 0 or start < 0:
        raise ConfigError(f"held_out_seeds needs n >= 0 and start >= 0, got {n}, {start}")
    return range(HELD_OUT_START + start, HELD_OUT_START + start + n)


def make_video(
    seed: int,
    length: int = 30,
    size: tuple[int, int] = REFERENCE_SIZE,
    config: VideoConfig | None = None,
) -> SyntheticVideo:
    """The video of `seed` (an int >= 0; `held_out_seeds` for the yardstick): `length` frames
    of `size` (H, W) px. The same arguments always give the same video, pixel for pixel.

    Raises `ConfigError` for a bad argument, `DataError` when scikit-image (the photos) is
    missing or no layout of the seed shows its objects (a frame too small for them).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise ConfigError(f"length must be an int >= 1 (frames), got {length!r}")
    if len(size) != 2 or min(size) < 32:
        raise ConfigError(f"size must be (height, width) with both >= 32 px, got {size!r}")
    size = (int(size[0]), int(size[1]))
    config = VideoConfig() if config is None else config
    photos = photo_textures("test" if seed >= HELD_OUT_START else "val")
    rng, ink = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    for _ in range(_TRIES):
        video = _design(rng, ink, photos, int(seed), int(length), size, config)
        if _find_prompt_frames(video):
            return video
    raise DataError(
        f"video seed {seed}: no layout in {_TRIES} tries shows {config.num_objects[0]}+ objects "
        f"of {video.prompt_area} px on some frame; use a larger size or smaller objects"
    )


def _design(
    rng: np.random.Generator,
    ink: np.random.Generator,
    photos: PhotoTextures,
    seed: int,
    length: int,
    size: tuple[int, int],
    config: VideoConfig,
) -> SyntheticVideo:
    """One random layout: `rng` draws shapes, sizes and paths, `ink` the textures."""
    height, width = size
    short = min(size)
    margin = round(0.2 * short)
    canvas = np.ascontiguousarray(photos.background(ink, height + 2 * margin, width + 2 * margin))
    under = canvas.reshape(-1, 3).mean(axis=0)
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        kind = config.kinds[rng.integers(len(config.kinds))]
        radius = short * rng.uniform(*config.object_size) * rng.uniform(0.6, 1.0)
        cx, cy = rng.uniform(0, canvas.shape[1]), rng.uniform(0, canvas.shape[0])
        stamp = DRAWERS[kind](rng, cx, cy, radius, canvas.shape[:2])
        if stamp is not None:
            region = canvas[stamp.window]
            local = region[stamp.mask].mean(axis=0)
            region[stamp.mask] = photos.fill(ink, stamp.mask, local, config.min_contrast)
    background = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    pan_speed, pan_heading = short * rng.uniform(*config.pan_speed), rng.uniform(0, 2 * np.pi)
    pan = (
        rng.uniform(0, 2 * margin),
        rng.uniform(0, 2 * margin),
        pan_speed * np.cos(pan_heading),
        pan_speed * np.sin(pan_heading),
    )
    count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    depths = rng.permutation(count)
    movers: list[_Mover] = []
    for k in range(count):
        movers.append(_mover(rng, ink, photos, size, config, length, movers, under, depths[k]))
    noise_std = float(rng.uniform(*config.noise_std))
    return SyntheticVideo(seed, length, size, config, background, movers, pan, noise_std)


def _mover(
    rng: np.random.Generator,
    ink: np.random.Generator,
    photos: PhotoTextures,
    size: tuple[int, int],
    config: VideoConfig,
    length: int,
    earlier: list[_Mover],
    under: np.ndarray,
    depth: float,
) -> _Mover:
    """An object whose path crosses that of a random earlier one (if any) mid-video."""
    height, width = size
    short = min(size)
    kind = config.kinds[rng.integers(len(config.kinds))]
    radius = short * rng.uniform(*config.object_size)
    side = 2 * int(np.ceil(radius)) + 3
    middle = (side - 1) / 2
    stamp = DRAWERS[kind](rng, middle, middle, radius, (side, side))
    shape = np.zeros((side, side), dtype=bool)
    if stamp is not None:
        shape[stamp.window] = stamp.mask
    texture = photos.fill(ink, np.ones((side, side), bool), under, config.min_contrast)
    if config.texture_contrast != 1:
        mean = texture.mean(axis=0)
        texture = mean + np.float32(config.texture_contrast) * (texture - mean)  # (S * S, 3)
    rgba = np.concatenate(
        [texture.reshape(side, side, 3), 255.0 * shape[..., None]], axis=-1
    )  # (S, S, 4)
    template = Image.fromarray(np.clip(rgba + 0.5, 0, 255).astype(np.uint8), "RGBA")
    reach = rng.uniform(*config.edge_reach) if rng.random() >= config.exit_prob else 1.25
    inner = radius * (1 - 2 * reach)  # how far the centre keeps from each edge
    bounds = (inner, width - 1 - inner, inner, height - 1 - inner)
    t_meet = rng.uniform(0.3, 0.7) * (length - 1)
    if not earlier:
        meet = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
        heading = rng.uniform(0, 2 * np.pi)
    else:
        other = earlier[rng.integers(len(earlier))]
        ox, oy = other.centre(t_meet)
        jitter = rng.normal(0.0, 0.2 * min(radius, other.radius), 2)
        meet = (
            float(np.clip(ox + jitter[0], min(bounds[:2]), max(bounds[:2]))),
            float(np.clip(oy + jitter[1], min(bounds[2:]), max(bounds[2:]))),
        )
        # Across the other's path, not along it: the two meet and part again.
        turn = rng.uniform(np.pi / 4, 3 * np.pi / 4) * rng.choice([-1.0, 1.0])
        heading = np.arctan2(other.direction[1], other.direction[0]) + turn
    swing = config.scale_swing * rng.uniform(0.3, 1.0)
    spin = np.radians(config.spin) * rng.uniform(-1.0, 1.0)
    return _Mover(
        kind=kind,
        template=template,
        radius=radius,
        meet=(float(meet[0]), float(meet[1])),
        t_meet=float(t_meet),
        direction=(float(np.cos(heading)), float(np.sin(heading))),
        speed=short * rng.uniform(*config.speed),
        wobble=(rng.uniform(0.0, 0.3) * radius, 2 * np.pi / rng.uniform(20, 80)),
        bounds=bounds,
        scale=(swing, 2 * np.pi / rng.uniform(40, 150), rng.uniform(0, 2 * np.pi)),
        angle=(rng.uniform(0, 2 * np.pi), spin, rng.uniform(0.0, 0.15)),
        depth=float(depth),
    )


def _find_prompt_frames(video: SyntheticVideo) -> bool:
    """Set `video.prompt_frames`, dropping objects that never show `prompt_area` px; False
    when fewer than the config's least number of objects remain."""
    while video.objects:
        found: dict[int, int] = {}
        for t in range(len(video)):
            counts = np.bincount(video.mask(t).ravel(), minlength=len(video.objects) + 1)
            for k in video.objects:
                if k not in found and counts[k] >= video.prompt_area:
                    found[k] = t
            if len(found) == len(video.objects):
                video.prompt_frames = found
                return len(found) >= video.config.num_objects[0]
        for k in sorted(set(video.objects) - set(found), reverse=True):
            video._remove(k)
    return False
