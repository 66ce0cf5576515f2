"""Reference vs segany, same process, same weights file, same image.

    python benchmarks/bench_predictor.py [--model vit_b] [--rounds 3] [--threads 2] [--device cuda]

Times the image encoder (`set_image`) and one `predict` (1 point, 3 masks) on a 768 x 1024
image, alternating the two implementations round by round so that machine noise hits both,
and prints medians, best times, their ratios, and the largest output differences.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from timing import time_calls  # noqa: E402

import segany  # noqa: E402
from conftest import synthetic_image  # noqa: E402
from reference_models import save_reference  # noqa: E402


def _reference_predictor(model):
    if type(model).__module__.startswith("mobile_sam"):
        from mobile_sam import SamPredictor
    else:
        from segment_anything import SamPredictor
    return SamPredictor(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--rounds", type=int, default=3, help="encoder rounds per side")
    parser.add_argument("--predicts", type=int, default=20, help="predict calls per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pth"
        ref_model = save_reference(args.model, path)
        ours = segany.SamPredictor(
            segany.build_sam(args.model, checkpoint=path, device=args.device)
        )
    ref = _reference_predictor(ref_model.to(args.device))
    image = synthetic_image(args.height, args.width)
    prompt = dict(
        point_coords=np.array([[0.5 * args.width, 0.4 * args.height]]), point_labels=np.array([1])
    )

    enc = {"reference": [], "segany": []}
    pred = {"reference": [], "segany": []}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, predictor in (("reference", ref), ("segany", ours)):
                enc[name] += time_calls(lambda p=predictor: p.set_image(image), 1, args.device)
                predictor.predict(**prompt)  # warm-up
                pred[name] += time_calls(
                    lambda p=predictor: p.predict(**prompt), args.predicts, args.device
                )
        feature_diff = (ref.features - ours.features).abs().max().item()
        expected = ref.predict(**prompt, return_logits=True)
        got = ours.predict(**prompt, return_logits=True)

    print(
        f"model {args.model}, image {args.height}x{args.width}, threads {args.threads}, "
        f"device {args.device}, torch {torch.__version__}"
    )
    print(f"{'step':<28}{'reference':>12}{'segany':>12}{'speed-up':>10}")
    for label, data, _unit, scale in (
        ("encoder (set_image), s", enc, "s", 1.0),
        ("predict (1 pt, 3 masks), ms", pred, "ms", 1000.0),
    ):
        for stat_name, stat in (("median", statistics.median), ("best", min)):
            r, s = stat(data["reference"]) * scale, stat(data["segany"]) * scale
            print(f"{label + ' ' + stat_name:<28}{r:>12.3f}{s:>12.3f}{r / s:>9.2f}x")
    print(
        f"max |embedding diff| {feature_diff:.2e}; max |logit diff| "
        f"{np.abs(expected[0] - got[0]).max():.2e}; max |IoU diff| "
        f"{np.abs(expected[1] - got[1]).max():.2e}; mask agreement "
        f"{((expected[0] > 0) == (got[0] > 0)).mean():.6f}"
    )


if __name__ == "__main__":
    main()
