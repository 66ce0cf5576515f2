"""`segany eval --data SPEC`: point-prompt metrics of a model on a dataset (1-point and oracle
mIoU, NoC@85 / NoC@90), as interactive-segmentation papers report them.

The data spec, the options, the model name and the checkpoint are checked before the model is
built.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, load_model, resolve_model
from segany.data.spec import SPEC_FORMS
from segany.devices import resolve_device
from segany.errors import CheckpointError

# (JSON key, table label, format) of the metrics printed.
_ROWS = (
    ("images", "images", "{}"),
    ("masks", "masks", "{}"),
    ("skipped_masks", "masks skipped (too small)", "{}"),
    ("one_point_miou", "1-point mIoU", "{:.4f}"),
    ("oracle_miou", "oracle mIoU (best of 3)", "{:.4f}"),
    ("noc85", "NoC@85", "{:.2f}"),
    ("noc90", "NoC@90", "{:.2f}"),
    ("nof85", "never reached 85 (NoF@85)", "{}"),
    ("nof90", "never reached 90 (NoF@90)", "{}"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="point-prompt metrics of a model on a dataset (mIoU, NoC@85/90)",
        description="Evaluate a model with simulated clicks on every mask of a dataset: "
        "1-point mIoU (one click at the point farthest from the mask border, the candidate "
        "with the highest predicted IoU), oracle mIoU (the best of the 3 candidates), and "
        "NoC@85 / NoC@90 (clicks until the IoU reaches 0.85 / 0.90, each new click at the "
        "interior point of the largest error region; never reached counts --max-clicks). "
        "Data specs: " + "; ".join(SPEC_FORMS) + ".",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--data", required=True, metavar="SPEC", help="the dataset, e.g. synthetic:test:200:256"
    )
    parser.add_argument(
        "--max-masks", type=int, metavar="N", help="evaluate at most N masks (default: all)"
    )
    parser.add_argument(
        "--max-clicks", type=int, default=20, metavar="N", help="most clicks per mask (default 20)"
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=16,
        metavar="PX",
        help="skip masks smaller than this many pixels (default 16)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from segany.data.spec import open_dataset
    from segany.evaluation import EvalConfig, Evaluator
    from segany.predictor import SamPredictor

    config = EvalConfig(max_clicks=args.max_clicks, min_area=args.min_area)
    if args.max_masks is not None and args.max_masks < 1:
        raise UsageError(f"--max-masks must be at least 1, got {args.max_masks}")
    dataset = open_dataset(args.data)
    spec, checkpoint = resolve_model(args)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"checkpoint file not found: {checkpoint}")
    device = resolve_device(args.device)
    # Random weights (no checkpoint) are seeded: the same numbers every run.
    predictor = SamPredictor(load_model(spec, checkpoint, device))
    summary = Evaluator(predictor, config).evaluate(
        dataset, max_masks=args.max_masks, progress=not args.quiet
    )
    report = {
        "model": spec.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "data": args.data,
        **summary.to_dict(),
    }
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def format_table(report: dict[str, Any]) -> str:
    """The metrics as aligned "label  value" lines under a title line."""
    weights = report["checkpoint"] or "random weights"
    lines = [f"{report['model']} ({weights}) on {report['data']}"]
    width = max(len(label) for _, label, _ in _ROWS)
    for key, label, form in _ROWS:
        lines.append(f"  {label:<{width}}  {form.format(report[key])}")
    lines.append(
        f"  (max {report['max_clicks']} clicks per mask; masks under {report['min_area']} px "
        "skipped)"
    )
    lines.append("  by mask area (COCO classes: small < 32^2 <= medium < 96^2 <= large px):")
    for name, row in report["by_size"].items():
        lines.append(
            f"    {name:<7}{row['masks']:>6} masks  1-point {row['one_point_miou']:.4f}  "
            f"oracle {row['oracle_miou']:.4f}  NoC@85 {row['noc85']:.2f}"
        )
    return "\n".join(lines)
