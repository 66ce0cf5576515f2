"""Automatic mask generation: reference vs segany, each in its own subprocess.

    python benchmarks/bench_amg.py                      # vit_b, 32x32 grid, 768x1024 image
    python benchmarks/bench_amg.py --case large         # segany only: bounded peak memory

Standard case: both implementations on the same random-weights vit_b file and image; prints
wall time, peak RSS, the ratios, and whether the masks agree. Random weights predict low IoU
and stability, so the thresholds default to values that keep masks (--pred-iou-thresh,
--stability-thresh; pass 0.88 / 0.95 for the reference defaults).
Large case: segany alone on 8000x6000 with one crop layer, at two thresholds that keep very
different numbers of masks: the peak should not grow with the number of masks.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _engineer(model):
    """The parity tests' structured decoder: nested discs around each prompt point."""
    from test_amg_parity import _engineer as engineer

    return engineer(model)


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. (`ru_maxrss` is not used: for a child
    started by fork + exec it also counts the parent's size at the fork.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    image = np.load(args.image)
    options = json.loads(args.options)
    structured = options.pop("structured", False)
    if args.worker == "reference":
        from segment_anything import SamAutomaticMaskGenerator

        from reference_models import build_reference

        model = build_reference(args.model)
        model.load_state_dict(torch.load(args.weights, weights_only=True))
        model = _engineer(model) if structured else model
        generator = SamAutomaticMaskGenerator(model.eval(), **options)
    else:
        import segany

        model = segany.build_sam(args.model, checkpoint=args.weights)
        model = _engineer(model) if structured else model
        generator = segany.AutomaticMaskGenerator(model, **options)
    start = time.perf_counter()
    with torch.inference_mode():
        records = generator.generate(image)
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    summary = {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "masks": len(records),
        "records": [
            {k: r[k] for k in ("bbox", "area", "predicted_iou", "stability_score")} for r in records
        ],
    }
    Path(args.result).write_text(json.dumps(summary))


def _run(kind: str, model: str, weights: Path, image: Path, options: dict, threads: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        cmd = [
            sys.executable, __file__, "--worker", kind, "--model", model,
            "--weights", str(weights), "--image", str(image), "--result", result.name,
            "--options", json.dumps(options), "--threads", str(threads),
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        return json.loads(Path(result.name).read_text())


def _agreement(ref: dict, ours: dict) -> str:
    key = lambda r: (tuple(r["bbox"]), r["area"])  # noqa: E731
    ref_keys = sorted(map(key, ref["records"]))
    our_keys = sorted(map(key, ours["records"]))
    same = ref_keys == our_keys
    return f"same boxes and areas: {same} ({len(ref_keys)} vs {len(our_keys)} masks)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("standard", "large"), default="standard")
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--pred-iou-thresh", type=float, default=0.5)
    parser.add_argument("--stability-thresh", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--structured",
        action="store_true",
        help="replace both decoders by the parity tests' engineered one (compact disc masks)",
    )
    parser.add_argument("--worker", choices=("reference", "segany"), help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    from conftest import synthetic_image
    from reference_models import save_reference

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pth"
        save_reference(args.model, weights)
        image_path = Path(tmp) / "image.npy"
        options = dict(
            points_per_side=args.points_per_side,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_thresh,
            structured=args.structured,
        )
        if args.case == "standard":
            np.save(image_path, synthetic_image(768, 1024))
            ref = _run("reference", args.model, weights, image_path, options, args.threads)
            ours = _run("segany", args.model, weights, image_path, options, args.threads)
            print(
                f"{args.model}{' (structured decoder)' if args.structured else ''}, "
                f"{args.points_per_side}x{args.points_per_side} grid, 768x1024, "
                f"thresholds iou {args.pred_iou_thresh} stability {args.stability_thresh}"
            )
            print(f"{'':<16}{'reference':>12}{'segany':>12}{'ratio':>10}")
            print(
                f"{'wall time, s':<16}{ref['seconds']:>12.1f}{ours['seconds']:>12.1f}"
                f"{ref['seconds'] / ours['seconds']:>9.2f}x"
            )
            print(
                f"{'peak RSS, MB':<16}{ref['peak_mb']:>12.0f}{ours['peak_mb']:>12.0f}"
                f"{ours['peak_mb'] / ref['peak_mb']:>9.2f}x"
            )
            print(_agreement(ref, ours))
        else:
            np.save(image_path, synthetic_image(6000, 8000))
            print(
                f"segany {args.model}{' (structured decoder)' if args.structured else ''}, "
                "8000x6000, crop_n_layers=1, "
                f"{args.points_per_side}x{args.points_per_side} grid"
            )
            for iou, stability in ((0.0, 0.0), (args.pred_iou_thresh, args.stability_thresh)):
                large = dict(
                    options,
                    crop_n_layers=1,
                    pred_iou_thresh=iou,
                    stability_score_thresh=stability,
                    output_mode="coco_rle",
                )
                ours = _run("segany", args.model, weights, image_path, large, args.threads)
                print(
                    f"thresholds {iou:.2f}/{stability:.2f}: {ours['masks']:>5} masks, "
                    f"{ours['seconds']:.0f} s, peak RSS {ours['peak_mb']:.0f} MB"
                )


if __name__ == "__main__":
    main()
