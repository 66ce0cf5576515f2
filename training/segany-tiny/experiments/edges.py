"""Does edge refinement (`segany.edge_refinement`, a guided filter over the image) help a model's
masks? `segany eval`'s protocol (the first click at the mask's interior point, the model's own
choice among 3 masks, then clicks on the largest error up to 20) with the refinement off and
with each radius given, on the same masks:

    python training/segany-tiny/experiments/edges.py [--model segany-tiny-v2] \
        [--checkpoint FILE] [--data "scenes:val:6:512 + photo:val:6:512"] \
        [--radius 0 4 8 16] [--eps 3e-4] [--subsample 4]

Radius 0 is "off"; a radius is in model-input pixels (`EdgeRefinement.radius`). Prints one row
per setting: masks, 1-point mIoU, oracle (best of 3), NoC@85 / NoC@90, boundary F at 2 px,
and the milliseconds a click's `predict` took on average. Uses validation splits by default, so
that choosing the setting never looks at the test split.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from segany import SamPredictor, build_sam
from segany.data.spec import open_dataset
from segany.edge_refinement import EdgeRefinement
from segany.evaluation.evaluator import EvalConfig, Evaluator


class TimedPredictor:
    """A predictor that adds up the seconds its `predict` calls take."""

    def __init__(self, predictor: SamPredictor) -> None:
        self.predictor = predictor
        self.seconds = 0.0
        self.calls = 0

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, **kwargs):
        start = time.perf_counter()
        out = self.predictor.predict(**kwargs)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segany-tiny-v2")
    parser.add_argument("--checkpoint")
    parser.add_argument("--data", default="scenes:val:6:512 + photo:val:6:512")
    parser.add_argument("--radius", type=int, nargs="+", default=[0, 4, 8, 16])
    parser.add_argument("--eps", type=float, default=3e-4)
    parser.add_argument("--subsample", type=int, default=4, help="1: the exact filter")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_sam(args.model, args.checkpoint, pretrained=args.checkpoint is None)
    data = open_dataset(args.data)
    print("| radius | masks | 1-point mIoU | oracle | NoC@85 / NoC@90 | boundary F | ms a click |")
    print("|---|---|---|---|---|---|---|")
    for radius in args.radius:
        setting = (
            None
            if radius == 0
            else EdgeRefinement(radius=radius, eps=args.eps, subsample=args.subsample)
        )
        timed = TimedPredictor(SamPredictor(model, edge_refinement=setting))
        evaluator = Evaluator(timed, EvalConfig())
        results = []
        for sample in data:
            results += evaluator.evaluate_sample(sample)[0]
        one = np.mean([r.one_point_iou for r in results])
        oracle = np.mean([r.oracle_iou for r in results])
        noc85 = np.mean([r.noc85 for r in results])
        noc90 = np.mean([r.noc90 for r in results])
        boundary = np.mean([r.boundary_f for r in results])
        ms = 1e3 * timed.seconds / max(timed.calls, 1)
        label = "off" if radius == 0 else str(radius)
        print(
            f"| {label} | {len(results)} | {one:.3f} | {oracle:.3f} | {noc85:.1f} / {noc90:.1f} "
            f"| {boundary:.3f} | {ms:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
