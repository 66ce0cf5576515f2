"""Upper bounds on the 1-point scores of any model on a synthetic test split, from the
ground truth alone (no model runs). Reproduces the ceilings in ../NOTES.md:

    python training/segany-tiny/experiments/ceilings.py [--data synthetic:test:50:256]
    python training/segany-tiny/experiments/ceilings.py --data scenes:test:30   # issue 13's

The rows are the size classes `segany eval` reports: all masks, "objects" (at least 24 x 24 px)
and "tiny" ones, then COCO's small / medium / large.

Two limits are measured, each per COCO size class as `segany eval` reports them:

- resolution: every mask average-pooled to a grid of the given stride, upsampled bilinearly
  and thresholded at 0.5, then compared with itself;
- ambiguity: the click `segany eval` uses (the mask's interior point farthest from its border)
  often lies in several nested masks. A model that returned every mask perfectly must still
  choose one. "random" picks uniformly among the masks containing the click; "smallest" picks
  the smallest, which is what SAM's recipe teaches: with the first click uniform in the target,
  a click inside a part is more likely to have come from the part than from the whole.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from segany.data.spec import open_dataset
from segany.evaluation.evaluator import SIZE_CLASSES, TINY_SIDE
from segany.evaluation.metrics import interior_point, iou

STRIDES = (8, 4, 2)


def pooled(mask: np.ndarray, stride: int) -> np.ndarray:
    """(H, W) bool -> the mask seen through a grid of `stride` px cells, (H, W) bool."""
    x = torch.from_numpy(mask).float()[None, None]
    grid = F.avg_pool2d(x, stride)
    back = F.interpolate(grid, size=mask.shape, mode="bilinear", align_corners=False)
    return back[0, 0].numpy() > 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic:test:50:256", help="a data spec")
    parser.add_argument("--min-area", type=int, default=16, help="as segany eval's")
    args = parser.parse_args()

    data = open_dataset(args.data)
    rows: list[dict[str, float]] = []
    for sample in data:
        masks = sample.masks.take(range(len(sample.masks)))  # (M, H, W) bool
        areas = masks.sum(axis=(1, 2))
        for i, mask in enumerate(masks):
            if areas[i] < args.min_area:
                continue
            x, y = interior_point(mask)
            holders = np.flatnonzero(masks[:, y, x])
            row = {"area": float(areas[i])}
            row["random"] = float(np.mean([iou(masks[j], mask) for j in holders]))
            row["smallest"] = iou(masks[holders[np.argmin(areas[holders])]], mask)
            row["ambiguous"] = float(len(holders) > 1)
            for stride in STRIDES:
                row[f"stride {stride}"] = iou(pooled(mask, stride), mask)
            rows.append(row)

    columns = ["ambiguous", "random", "smallest", *(f"stride {s}" for s in STRIDES)]
    print(f"{len(rows)} masks in {len(data)} images of {args.data}")
    print(f"{'class':<8} {'masks':>6} " + " ".join(f"{c:>10}" for c in columns))
    split = (("objects", TINY_SIDE**2, None), ("tiny", 0, TINY_SIDE**2))
    for name, low, high in (("all", 0, None), *split, *SIZE_CLASSES):
        chosen = [r for r in rows if low <= r["area"] and (high is None or r["area"] < high)]
        if not chosen:
            continue
        means = [np.mean([r[c] for r in chosen]) for c in columns]
        print(f"{name:<8} {len(chosen):>6} " + " ".join(f"{m:>10.3f}" for m in means))


if __name__ == "__main__":
    main()
