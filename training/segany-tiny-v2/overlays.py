"""The README's overlays of the built-in model: what one click per object gives.

    python training/segany-tiny-v2/overlays.py [--model segany-tiny-v2] [--checkpoint PATH]

Writes two images to docs/images/ (each: the prompts and masks on the left, the ground truth
on the right):
- MODEL-sample.png: examples/sample.png, one click on each drawn shape (its ground truth is
  `segany.data.sample_scene`'s shapes: the disc is checked by a test, the others are drawn
  by eye).
- MODEL-photo.jpg: a held-out photo-texture scene (`photo:test`), one click at the interior
  point of each whole object, the model's most confident of its three masks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segany import SamPredictor, build_sam
from segany.data.spec import open_dataset
from segany.evaluation.metrics import interior_point
from segany.visualize import draw_masks

ROOT = Path(__file__).resolve().parents[2]
# A click inside each shape of the sample (x, y in the 640 x 480 image).
SAMPLE_CLICKS = [(330, 190), (120, 300), (520, 330), (400, 400), (60, 430), (394, 344)]


def one_click_masks(predictor: SamPredictor, clicks: list[tuple[int, int]]) -> list[np.ndarray]:
    """For each (x, y) click alone: the most confident of the model's three masks."""
    masks = []
    for x, y in clicks:
        candidates, scores, _ = predictor.predict(
            point_coords=np.array([[x, y]]), point_labels=np.array([1])
        )
        masks.append(candidates[int(np.argmax(scores))])
    return masks


def with_clicks(canvas: Image.Image, clicks: list[tuple[int, int]]) -> Image.Image:
    draw = ImageDraw.Draw(canvas)
    r = max(3, min(canvas.size) // 80)
    for x, y in clicks:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, 220, 60), outline=(255, 255, 255))
    return canvas


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    out = Image.new("RGB", (left.width + right.width + 8, max(left.height, right.height)), "white")
    out.paste(left, (0, 0))
    out.paste(right, (left.width + 8, 0))
    return out


def by_area(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Largest first, so that smaller masks are drawn over the larger ones."""
    return sorted(masks, key=lambda m: -int(m.sum()))


def sample_overlay(predictor: SamPredictor) -> Image.Image:
    image = np.asarray(Image.open(ROOT / "examples" / "sample.png").convert("RGB"))
    predictor.set_image(image)
    masks = one_click_masks(predictor, SAMPLE_CLICKS)
    return with_clicks(draw_masks(image, by_area(masks)), SAMPLE_CLICKS)


def photo_overlay(predictor: SamPredictor, index: int) -> Image.Image:
    sample = open_dataset("photo:test:20:512")[index]
    everything = sample.masks.take(range(len(sample.masks)))
    wholes = [mask for mask, parent in zip(everything, sample.parent, strict=True) if parent < 0]
    clicks = [interior_point(m) for m in wholes]
    predictor.set_image(sample.image)
    masks = one_click_masks(predictor, clicks)
    left = with_clicks(draw_masks(sample.image, by_area(masks)), clicks)
    return side_by_side(left, draw_masks(sample.image, by_area(wholes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segany-tiny-v2")
    parser.add_argument("--checkpoint")
    parser.add_argument("--scene", type=int, default=3, help="index among photo:test:20")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    predictor = SamPredictor(build_sam(args.model, args.checkpoint))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sample_overlay(predictor).save(out / f"{args.model}-sample.png", optimize=True)
    photo = photo_overlay(predictor, args.scene)  # a JPEG: the photo crops do not compress in PNG
    photo.save(out / f"{args.model}-photo.jpg", quality=85, optimize=True)
    print(f"wrote {out}/{args.model}-sample.png and {args.model}-photo.jpg")


if __name__ == "__main__":
    main()
