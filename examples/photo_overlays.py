"""Draw what the built-in model does on two real photographs (scikit-image's bundled cat and
coffee cup, `pip install "segany[train]"`): the README's "what the built-in model is for".

    python examples/photo_overlays.py [--model segany-tiny-v2] [--out docs/images]

Writes <model>-cat.png and <model>-coffee.png: the best-scored mask of one click, tinted, the
click drawn. With a downloaded SAM 2 checkpoint, `--model sam2.1_hiera_t` shows the same
clicks on the model meant for photographs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import segany
from segany.visualize import draw_overlay

# (x, y) clicks in each photo's pixels: the cat's forehead, the coffee cup's side.
CLICKS = {"cat": ("chelsea", (254, 141)), "coffee": ("coffee", (281, 206))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segany-tiny-v2")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--width", type=int, default=320, help="width of the saved overlays")
    args = parser.parse_args()
    from skimage import data

    predictor = segany.SamPredictor(segany.build_sam(args.model))
    args.out.mkdir(parents=True, exist_ok=True)
    for label, (photo, (x, y)) in CLICKS.items():
        image = np.asarray(getattr(data, photo)())
        predictor.set_image(image)
        masks, scores, _ = predictor.predict(
            point_coords=np.array([[x, y]]), point_labels=np.array([1]), multimask_output=True
        )
        best = int(np.argmax(scores))
        overlay = draw_overlay(image, masks[best], np.array([[x, y]]), np.array([1]))
        h = round(overlay.height * args.width / overlay.width)
        path = args.out / f"{args.model}-{label}.png"
        overlay.resize((args.width, h), Image.Resampling.LANCZOS).save(path, optimize=True)
        print(f"{path}: score {scores[best]:.2f}, {int(masks[best].sum())} px")


if __name__ == "__main__":
    main()
