"""The sample scene of the README and the demo: a 640x480 picture of a few overlapping
flat-coloured shapes on a soft two-way gradient, fully deterministic (`examples/sample.png` is
this image, re-made byte for byte by `python examples/make_sample.py`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 640, 480
SUPERSAMPLE = 2  # draw at twice the size, then shrink: smooth (antialiased) edges


def background(width: int, height: int) -> Image.Image:
    """A sky-to-sand gradient from top to bottom, a little warmer to the right."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    s = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]  # (1, W, 1)
    top = np.array([150, 190, 235], dtype=np.float32)
    bottom = np.array([225, 210, 170], dtype=np.float32)
    warm = np.array([20, 0, -20], dtype=np.float32)
    rgb = (1 - t) * top + t * bottom + s * warm  # (H, W, 3)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


def draw_scene(draw: ImageDraw.ImageDraw, k: int) -> None:
    """The shapes, in 640x480 coordinates scaled by `k`; later shapes cover earlier ones."""

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
        return (x0 * k, y0 * k, x1 * k, y1 * k)

    draw.rectangle(box(0, 380, 640, 480), fill=(96, 140, 72))  # a green ground band
    draw.rounded_rectangle(box(60, 150, 300, 400), radius=24 * k, fill=(200, 70, 60))  # red block
    draw.ellipse(box(230, 90, 430, 290), fill=(245, 190, 40))  # yellow disc over the block
    draw.polygon(  # a purple triangle leaning on the disc
        [(380 * k, 400 * k), (500 * k, 140 * k), (600 * k, 400 * k)], fill=(120, 80, 170)
    )
    draw.ellipse(box(330, 300, 470, 440), fill=(40, 150, 160))  # a teal ball in front
    draw.ellipse(box(380, 330, 410, 360), fill=(235, 245, 245))  # its highlight


def make_sample() -> Image.Image:
    """The 640x480 RGB sample scene."""
    k = SUPERSAMPLE
    canvas = background(WIDTH * k, HEIGHT * k)
    draw_scene(ImageDraw.Draw(canvas), k)
    return canvas.resize((WIDTH, HEIGHT), Image.LANCZOS)
