"""Draw a strip of tracked frames: the README's picture of `segany.track` at work.

    python examples/track_strip.py [--model segany-tiny-v2] [--seed 10000] [--out docs/images]

Tracks every object of one held-out synthetic video (`segany.data.synthetic_video`) from one
click each on the frame where it first shows, and writes <model>-track-strip.png: every
`--step`-th frame with the tracked masks tinted in each object's colour (the click drawn on its
frame), above the same frames with the ground truth, so that a look says where it holds and
where it slips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import segany
from segany.data.synthetic_video import make_video
from segany.evaluation.sequences import first_clicks
from segany.track import build_tracker
from segany.visualize import draw_masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segany-tiny-v2")
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--step", type=int, default=6, help="draw every step-th frame")
    parser.add_argument("--width", type=int, default=240, help="width of each drawn frame")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()

    video = make_video(args.seed, length=args.length)
    session = build_tracker(segany.build_sam(args.model)).open(video.sequence(lazy=True))
    clicks = first_clicks(video)
    for prompt in clicks.values():
        session.add_prompt(prompt)
    shown = set(range(0, args.length, args.step))
    tracked: dict[int, dict[int, np.ndarray]] = {}
    for result in session.propagate(start=min(p.frame for p in clicks.values())):
        if result.frame in shown:
            tracked[result.frame] = result.masks
    ids = sorted(video.objects)
    height = round(args.width * video.mask(0).shape[0] / video.mask(0).shape[1])
    top, bottom = [], []
    for t in sorted(shown):
        frame = video.frame(t)
        masks = tracked.get(t, {})
        empty = np.zeros(frame.shape[:2], bool)
        ours = draw_masks(frame, (masks.get(k, empty) for k in ids))
        draw = ImageDraw.Draw(ours)
        for k in ids:
            prompt = clicks[k]
            if prompt.frame == t:
                x, y = prompt.points[0, :2]
                draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=(40, 220, 80), outline="white")
        truth = draw_masks(frame, (video.mask(t) == k for k in ids))
        top.append(ours.resize((args.width, height)))
        bottom.append(truth.resize((args.width, height)))
    strip = Image.new("RGB", (args.width * len(top) + 4 * (len(top) - 1), 2 * height + 4), "white")
    for i, (a, b) in enumerate(zip(top, bottom, strict=True)):
        strip.paste(a, (i * (args.width + 4), 0))
        strip.paste(b, (i * (args.width + 4), height + 4))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.model}-track-strip.png"
    strip.save(path, optimize=True)
    print(f"wrote {path}: frames {sorted(shown)}, tracked (top) and ground truth (bottom)")


if __name__ == "__main__":
    main()
