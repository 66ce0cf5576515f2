"""`segany eval --sequences [N]` / `--volumes [N]`: the sequence yardstick (issue 26) on the
command line. The model's tracker (`segany.track.build_tracker`) is scored with the DAVIS
protocol on N held-out synthetic videos, one click per object, beside the image model's own
baselines without a tracker; `--volumes` reports the Dice of one click per blob on synthetic
volumes. The work is in `segany.evaluation.sequence_report`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from segany.cli.errors import UsageError
from segany.cli.model_options import load_model, resolve_model
from segany.devices import resolve_device
from segany.errors import CheckpointError

DEFAULT_VIDEOS = 5
DEFAULT_VOLUMES = 2


def _dimensions(count: int, words: str):
    """An argparse type reading `count` positive ints joined by "x" (e.g. 480x640)."""

    def parse(text: str) -> tuple[int, ...]:
        parts = text.lower().split("x")
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != count or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected {words} in px, e.g. {_EXAMPLE[count]}")
        return values

    return parse


_EXAMPLE = {2: "480x640", 3: "200x256x256"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sequence options on `segany eval`'s parser."""
    group = parser.add_argument_group(
        "sequences (instead of --data: tracking through videos and volumes)"
    )
    group.add_argument(
        "--sequences",
        type=int,
        nargs="?",
        const=DEFAULT_VIDEOS,
        metavar="N",
        help=f"track N held-out synthetic videos (default {DEFAULT_VIDEOS}) from one click per "
        "object and print DAVIS J, F and J&F, the image model's baselines without a tracker "
        "(first mask held still, previous frame's box, ground-truth box: the ceiling), the "
        "J&F gain of one correction click on the worst frame, and frames per second",
    )
    group.add_argument(
        "--volumes",
        type=int,
        nargs="?",
        const=DEFAULT_VOLUMES,
        metavar="N",
        help=f"track N synthetic volumes (default {DEFAULT_VOLUMES}) from one click per blob "
        "on its largest slice, forward and backward, and print the Dice",
    )
    group.add_argument(
        "--length", type=int, default=30, metavar="T", help="frames per video (default 30)"
    )
    group.add_argument(
        "--size",
        type=_dimensions(2, "HEIGHTxWIDTH"),
        default=(480, 640),
        metavar="HxW",
        help="video frame size (default 480x640)",
    )
    group.add_argument(
        "--volume-shape",
        type=_dimensions(3, "DEPTHxHEIGHTxWIDTH"),
        default=(200, 256, 256),
        metavar="DxHxW",
        help="volume size in voxels, slices along D (default 200x256x256)",
    )
    group.add_argument(
        "--seed-start",
        type=int,
        default=0,
        metavar="S",
        help="take the held-out seeds from 10000+S on (default 0)",
    )
    group.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="skip the image model's baselines (they encode every frame once more)",
    )


def wants_sequences(args: argparse.Namespace) -> bool:
    return args.sequences is not None or args.volumes is not None


def _check(args: argparse.Namespace) -> None:
    if args.data is not None:
        raise UsageError("give --data SPEC or --sequences/--volumes, not both")
    for option, value in (("--sequences", args.sequences), ("--volumes", args.volumes)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be at least 1, got {value}")
    if args.length < 1:
        raise UsageError(f"--length must be at least 1 frame, got {args.length}")
    if min(args.size) < 32:
        raise UsageError(f"--size must be at least 32x32 px, got {args.size[0]}x{args.size[1]}")
    if min(args.volume_shape) < 16:
        raise UsageError("--volume-shape must be at least 16 voxels along each axis")
    if args.seed_start < 0:
        raise UsageError(f"--seed-start must be at least 0, got {args.seed_start}")


def run(args: argparse.Namespace) -> int:
    import torch

    from segany.data.synthetic_video import held_out_seeds
    from segany.evaluation.sequence_report import evaluate_videos, evaluate_volumes
    from segany.predictor import SamPredictor
    from segany.track import build_tracker

    _check(args)
    spec, checkpoint = resolve_model(args)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"checkpoint file not found: {checkpoint}")
    model = load_model(spec, checkpoint, resolve_device(args.device), args.edge_refinement)
    tracker = build_tracker(model)
    report: dict[str, Any] = {
        "model": spec.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "tracker": tracker.name,
        "threads": torch.get_num_threads(),
        "seeds_from": held_out_seeds(1, args.seed_start)[0],
    }
    if args.sequences is not None:
        predictor = SamPredictor(model) if args.baselines else None
        videos = evaluate_videos(
            tracker,
            predictor,
            held_out_seeds(args.sequences, args.seed_start),
            length=args.length,
            size=tuple(args.size),
            progress=not args.quiet,
        )
        report["sequences"] = videos.to_dict()
    if args.volumes is not None:
        volumes = evaluate_volumes(
            tracker,
            held_out_seeds(args.volumes, args.seed_start),
            shape=tuple(args.volume_shape),
            progress=not args.quiet,
        )
        report["volumes"] = volumes.to_dict()
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


_COLUMNS = (("j_mean", "J"), ("f_mean", "F"), ("jf_mean", "J&F"), ("j_recall", "J rec"),
            ("j_decay", "J decay"))  # fmt: skip
_BASELINE_LABELS = {
    "held": "first mask held still",
    "previous box": "previous frame's box",
    "ground-truth box": "ground-truth box (ceiling)",
}


def _row(label: str, summary: dict[str, Any], width: int) -> str:
    cells = "  ".join(f"{summary[key]:>7.4f}" for key, _ in _COLUMNS)
    return f"  {label:<{width}}{cells}"


def format_table(report: dict[str, Any]) -> str:
    """The report as a title line and aligned rows (see `run`)."""
    weights = report["checkpoint"] or "shipped or random weights"
    lines = [f"{report['model']} ({weights}), tracker: {report['tracker']}"]
    videos = report.get("sequences")
    if videos is not None:
        height, width = videos["size"]
        first = report["seeds_from"]
        lines.append(
            f"{videos['videos']} held-out synthetic videos (seeds {first}-"
            f"{first + videos['videos'] - 1}), {videos['length']} frames of {width} x {height}, "
            f"{videos['tracker']['objects']} objects, one click each on its first frame"
        )
        label_width = 30
        header = "  ".join(name.rjust(7) for _, name in _COLUMNS)
        lines.append(f"  {'':<{label_width}}{header}")
        lines.append(_row("tracker", videos["tracker"], label_width))
        if videos["corrected"] is not None:
            lines.append(_row("after 1 correction click", videos["corrected"], label_width))
        for name, summary in videos["baselines"].items():
            lines.append(_row(_BASELINE_LABELS.get(name, name), summary, label_width))
        if videos["correction_gain"] is not None:
            lines.append(f"  correction gain (J&F)  {videos['correction_gain']:+.4f}")
        if videos["ceiling_share"] is not None:
            lines.append(f"  tracker J / ceiling J  {100 * videos['ceiling_share']:.1f} %")
        lines.append(
            f"  tracking speed         {videos['frames_per_second']:.2f} frames/s "
            f"({report['threads']} threads)"
        )
    volumes = report.get("volumes")
    if volumes is not None:
        shape = " x ".join(str(s) for s in volumes["shape"])
        blobs = sum(len(d) for d in volumes["per_volume"].values())
        lines.append(
            f"{volumes['volumes']} synthetic volumes of {shape} voxels, {blobs} blobs, one click "
            f"each on its largest slice: Dice {volumes['dice_mean']:.4f}, "
            f"{volumes['slices_per_second']:.2f} slices/s"
        )
    return "\n".join(lines)
