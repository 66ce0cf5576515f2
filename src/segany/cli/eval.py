"""`segany eval --data SPEC`: point-prompt metrics of a model on a dataset (1-point and oracle
mIoU, NoC@85 / NoC@90, boundary F-score), as interactive-segmentation papers report them, for
all masks, by COCO size class, and for objects of at least 24 x 24 px apart from tiny ones;
with `--amg`, also the AR@100 of the model's automatic masks under its own defaults; and the
time the model takes to encode a 640 x 480 image.

The data spec, the options, the model name and the checkpoint are checked before the model is
built.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from segany.cli import eval_sequences
from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, load_model, resolve_model
from segany.data.spec import SPEC_FORMS
from segany.devices import resolve_device
from segany.errors import CheckpointError
from segany.interactive import CLICK_RULES

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
    ("boundary_f", "boundary F (1-point mask)", "{:.4f}"),
    ("encoding_ms", "image encoding, 640 x 480 (ms)", "{:.1f}"),
)
# (JSON key, label, format) of a size class's row.
_CLASS_COLUMNS = (
    ("one_point_miou", "1-point", "{:.4f}"),
    ("oracle_miou", "oracle", "{:.4f}"),
    ("noc85", "NoC@85", "{:5.2f}"),
    ("noc90", "NoC@90", "{:5.2f}"),
    ("boundary_f", "bF", "{:.4f}"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="point-prompt metrics of a model on a dataset (mIoU, NoC@85/90)",
        description="Evaluate a model with simulated clicks on every mask of a dataset: "
        "1-point mIoU (one click at the point farthest from the mask border, the candidate "
        "with the highest predicted IoU), oracle mIoU (the best of the 3 candidates), and "
        "NoC@85 / NoC@90 (clicks until the IoU reaches 0.85 / 0.90, each new click at the "
        "interior point of the largest error region; never reached counts --max-clicks), and "
        "the boundary F-score of the 1-point mask (boundary pixels matched within 2 px). "
        "Each also for objects of at least 24 x 24 px and tiny masks apart, and by COCO size "
        "class. Data specs: " + "; ".join(SPEC_FORMS) + ".",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--data",
        metavar="SPEC",
        help="the dataset, e.g. scenes:test:200 (see below); or --sequences / --volumes",
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
    parser.add_argument(
        "--clicks",
        choices=CLICK_RULES,
        default="sam",
        help="how each click after the first is answered: sam (SAM's protocol, the single-mask "
        "output; default) or consistent (the annotation app's rule: the single-mask output "
        "unless it contradicts a click, else the output that contradicts fewest)",
    )
    parser.add_argument(
        "--amg",
        action="store_true",
        help="also run automatic mask generation (the model's own defaults) on every image and "
        "report class-agnostic AR@100 (pycocotools COCOeval; slow: a grid of prompts per image)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    eval_sequences.add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from segany.data.spec import open_dataset
    from segany.evaluation import EvalConfig, Evaluator
    from segany.evaluation.timing import encoding_milliseconds
    from segany.predictor import SamPredictor

    if eval_sequences.wants_sequences(args):
        return eval_sequences.run(args)
    if args.data is None:
        raise UsageError("give --data SPEC (a dataset), or --sequences / --volumes")
    config = EvalConfig(max_clicks=args.max_clicks, min_area=args.min_area, clicks=args.clicks)
    if args.max_masks is not None and args.max_masks < 1:
        raise UsageError(f"--max-masks must be at least 1, got {args.max_masks}")
    dataset = open_dataset(args.data)
    spec, checkpoint = resolve_model(args)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"checkpoint file not found: {checkpoint}")
    device = resolve_device(args.device)
    # Random weights (no checkpoint) are seeded: the same numbers every run.
    model = load_model(spec, checkpoint, device, args.edge_refinement)
    predictor = SamPredictor(model)
    summary = Evaluator(predictor, config).evaluate(
        dataset, max_masks=args.max_masks, progress=not args.quiet
    )
    encoder_dtype = predictor.encoder_dtype() or torch.float32
    report = {
        "model": spec.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "data": args.data,
        **summary.to_dict(),
        "encoding_ms": encoding_milliseconds(model),
        "threads": torch.get_num_threads(),
        "encoder_dtype": str(encoder_dtype).removeprefix("torch."),
        "edge_refinement": _refinement(predictor),
        "amg": _amg_scores(model, dataset, config) if args.amg else None,
    }
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _refinement(predictor: Any) -> dict[str, Any] | None:
    """The edge refinement the masks were scored with (the model's own), None if off."""
    settings = predictor.edge_refinement
    return None if settings is None else dataclasses.asdict(settings)


def _amg_scores(model: Any, dataset: Any, config: Any) -> dict[str, Any]:
    """AR@100 of the model's automatic masks (its own AMG defaults) on every image of
    `dataset`, against the masks of at least `config.min_area` px, with the options used."""
    from segany.evaluation.proposals import proposal_scores
    from segany.masks.generator import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator(model)  # SAM's defaults with the model's own applied
    scores = proposal_scores(
        generator.generate, dataset, min_area=config.min_area, tiny_side=config.tiny_side
    )
    options = generator.config
    return {
        **scores.to_dict(),
        "points_per_side": options.points_per_side,
        "pred_iou_thresh": options.pred_iou_thresh,
        "stability_score_thresh": options.stability_score_thresh,
    }


_CLICK_WORDS = {
    "sam": "later clicks answered by the single-mask output",
    "consistent": "later clicks answered by the app's click-consistent rule",
}


def _refinement_words(settings: dict[str, Any] | None) -> str:
    if settings is None:
        return "masks not edge-refined"
    return f"masks edge-refined, radius {settings['radius']} input px"


def format_table(report: dict[str, Any]) -> str:
    """The metrics as aligned "label  value" lines under a title line, then the size classes
    and, when run, the automatic masks' scores."""
    weights = report["checkpoint"] or "random weights"
    lines = [f"{report['model']} ({weights}) on {report['data']}"]
    width = max(len(label) for _, label, _ in _ROWS)
    for key, label, form in _ROWS:
        lines.append(f"  {label:<{width}}  {form.format(report[key])}")
    lines.append(
        f"  (max {report['max_clicks']} clicks per mask, {_CLICK_WORDS[report['clicks']]}; "
        f"masks under {report['min_area']} px skipped; bF: boundary F within "
        f"{report['boundary_tolerance']:g} px; encoding: "
        f"set_image's median of 5 on {report['threads']} threads, encoder in "
        f"{report['encoder_dtype']}; {_refinement_words(report.get('edge_refinement'))})"
    )
    side = report["tiny_side"]
    lines.append(f"  objects (area >= {side}^2 px) and tiny masks (< {side}^2) apart:")
    lines += _class_rows(report["size_split"])
    lines.append("  by mask area (COCO classes: small < 32^2 <= medium < 96^2 <= large px):")
    lines += _class_rows(report["by_size"])
    amg = report.get("amg")
    if amg is not None:
        lines.append(
            f"  automatic masks (the model's defaults: {amg['points_per_side']} points per side, "
            f"pred IoU {amg['pred_iou_thresh']:g}, stability {amg['stability_score_thresh']:g}):"
        )
        split = "  ".join(
            f"{name} {_maybe(amg[key])}"
            for name, key in (("objects", "ar100_objects"), ("tiny", "ar100_tiny"))
        )
        lines.append(
            f"    AR@100 {amg['ar100']:.4f}  AR@10 {amg['ar10']:.4f}  AR@1 {amg['ar1']:.4f}  "
            f"AP {amg['ap']:.4f}  ({amg['proposals'] / max(amg['images'], 1):.1f} proposals "
            "per image)"
        )
        lines.append(f"    AR@100 of {split}")
    return "\n".join(lines)


def _class_rows(classes: dict[str, dict[str, float]]) -> list[str]:
    rows = []
    for name, row in classes.items():
        cells = "  ".join(f"{label} {form.format(row[key])}" for key, label, form in _CLASS_COLUMNS)
        rows.append(f"    {name:<8}{row['masks']:>6} masks  {cells}")
    return rows


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
