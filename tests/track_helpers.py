"""Tiny videos with ground truth for the tracker tests: textured ellipses moving over a
textured background (made here, so the tests need nothing else), and the masks' scoring."""

from __future__ import annotations

import numpy as np

from segany.data.textures import fractal_noise
from segany.sequences import ArraySequence

# (colour RGB, start centre (x, y) as a fraction of (W, H), velocity (dx, dy) in px per frame,
# radii (rx, ry) as a fraction of the short side)
_OBJECTS = (
    ((220, 60, 40), (0.3, 0.4), (2.0, 1.0), (0.16, 0.11)),
    ((40, 90, 230), (0.7, 0.6), (-1.5, -0.5), (0.12, 0.15)),
)


def moving_blobs(
    frames: int = 8,
    size: tuple[int, int] = (96, 128),
    objects: int = 2,
    seed: int = 0,
    hidden: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 RGB frames and (T, H, W) uint8 id maps (0 background, 1.. objects)
    of `objects` (1 or 2) textured ellipses moving in straight lines over a grey-green
    texture; object 2 passes in front of object 1 where they meet. Object 1 is not drawn on
    the frames in `hidden` (it is gone, then comes back)."""
    rng = np.random.default_rng(seed)
    height, width = size
    ground = fractal_noise(rng, height, width, cells=6)[..., None]  # (H, W, 1)
    background = (60 + 80 * ground * np.array([0.8, 1.0, 0.7])).astype(np.float32)
    grain = fractal_noise(rng, height, width, cells=16)[..., None] - 0.5
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    short = min(height, width)
    video = np.zeros((frames, height, width, 3), np.uint8)
    ids = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        image = background.copy()
        for k, (colour, start, velocity, radii) in enumerate(_OBJECTS[:objects]):
            if k == 0 and t in hidden:
                continue
            cx = start[0] * width + velocity[0] * t
            cy = start[1] * height + velocity[1] * t
            rx, ry = radii[0] * short, radii[1] * short
            inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
            paint = np.array(colour, np.float32) + 50 * grain
            image[inside] = paint[inside]
            ids[t][inside] = k + 1
        video[t] = np.clip(image, 0, 255).astype(np.uint8)
    return video, ids


def sequence_of(frames: np.ndarray) -> ArraySequence:
    """The (T, H, W, 3) frames as a `FrameSequence`."""
    return ArraySequence(frames, kind="video")


def centre_click(mask: np.ndarray) -> np.ndarray:
    """(1, 3) [[x, y, 1]]: a foreground click at the pixel of `mask` farthest from its edge."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return np.array([[x + 0.5, y + 0.5, 1.0]])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (1 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0
