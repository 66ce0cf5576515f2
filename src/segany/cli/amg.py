"""`segany amg INPUT... --out DIR`: automatic masks for many images (the data engine).

Every check that needs no model (inputs, options, model, checkpoint, Ray installed) runs
before a model is built. The work itself is `segany.engine.run_amg`, usable from Python.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segany.cli.errors import UsageError
from segany.cli.model_options import (
    add_model_arguments,
    resolve_device,
    resolve_model,
    warn_random_weights,
)
from segany.engine import ENGINES, FORMATS, ModelSource, OutputOptions, RayOptions, run_amg
from segany.engine.outputs import COCO_FILE, ERRORS_FILE, OVERLAYS
from segany.errors import CheckpointError
from segany.formats.image import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from segany.masks.generator import AmgConfig

# Exit status when images were found but not one could be read.
EXIT_NOTHING_READ = 1

# (name, type, default, help) of the generator's options. The defaults are AmgConfig's
# (a test checks they agree), written out so that `segany --help` need not import the generator.
_AMG_OPTIONS = (
    ("points_per_side", int, 32, "grid points along each side of the image (N*N prompts)"),
    ("points_per_batch", int, 64, "prompts decoded together (more: faster, more memory)"),
    ("pred_iou_thresh", float, 0.88, "keep masks whose predicted IoU is above this"),
    ("stability_score_thresh", float, 0.95, "keep masks whose stability score is at least this"),
    ("stability_score_offset", float, 1.0, "logit offset of the stability score"),
    ("box_nms_thresh", float, 0.7, "box IoU above which a duplicate mask is dropped"),
    ("crop_n_layers", int, 0, "> 0: run again on 4, 16, ... overlapping crops"),
    ("crop_nms_thresh", float, 0.7, "box NMS threshold between crops"),
    ("crop_overlap_ratio", float, 512 / 1500, "crop overlap, a fraction of the short side"),
    ("crop_n_points_downscale_factor", int, 1, "points per side on crop layer i: / factor**i"),
    ("min_mask_region_area", int, 0, "> 0: remove holes and islands smaller than this (px)"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "amg",
        help="automatic masks for many images (segment everything)",
        description="Segment everything in each image (SAM prompted with a grid of points) and "
        "write the masks. INPUT files and folders (searched recursively for "
        f"{', '.join(IMAGE_EXTENSIONS)}) are processed in sorted order; an image whose outputs "
        "exist is skipped, so an interrupted run resumes where it stopped. Unreadable images "
        f"are reported on stderr and in DIR/{ERRORS_FILE} and skipped.",
    )
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="image or folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="sa1b",
        help="sa1b: one JSON per image (SA-1B layout, COCO RLE masks); coco: one "
        f"DIR/{COCO_FILE} for the run; png: a folder per image with 0.png, 1.png, ... "
        "and metadata.csv (default sa1b)",
    )
    parser.add_argument(
        "--overlay",
        action="store_true",
        help=f"also draw each image's masks in distinct colours to DIR/{OVERLAYS}/NAME.png",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo images whose outputs already exist"
    )
    add_model_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")

    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: one model in this process; ray: a Ray Data pipeline with one model per "
        "actor (needs segany[scale]) (default local)",
    )
    engine.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join (e.g. auto, ray://HOST:10001); default: a local Ray",
    )
    engine.add_argument(
        "--ray-actors", type=int, default=2, metavar="N", help="model replicas (default 2)"
    )
    engine.add_argument(
        "--ray-cpus",
        type=int,
        default=2,
        metavar="N",
        help="CPUs of the local Ray started without --ray-address (default 2)",
    )

    amg = parser.add_argument_group("mask generation (defaults: SAM's)")
    for name, kind, default, text in _AMG_OPTIONS:
        amg.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=default,
            metavar="N" if kind is int else "X",
            help=f"{text} (default {default:.4g})",
        )
    amg.add_argument(
        "--skip-covered-points",
        action="store_true",
        help="do not prompt grid points inside masks already kept (faster; output differs "
        "slightly from SAM's)",
    )
    parser.set_defaults(run=run)


def amg_config(args: argparse.Namespace) -> AmgConfig:
    """The generator options from the command line, validated (`ConfigError` if out of range)."""
    from segany.masks.generator import AmgConfig

    config = AmgConfig(
        **{name: getattr(args, name) for name, *_ in _AMG_OPTIONS},
        skip_covered_points=args.skip_covered_points,
    )
    config.validate(has_point_grids=False)
    return config


def run(args: argparse.Namespace) -> int:
    amg = amg_config(args)
    spec, checkpoint = resolve_model(args)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"checkpoint file not found: {checkpoint}")
    device = resolve_device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    ray_options = None
    if args.engine == "ray":
        from segany.engine.ray_engine import import_ray

        import_ray()  # fail now, not after the images were listed
        ray_options = RayOptions(
            address=args.ray_address, num_cpus=args.ray_cpus, actors=args.ray_actors
        )
    elif args.ray_address is not None:
        raise UsageError("--ray-address needs --engine ray")

    if checkpoint is None:
        warn_random_weights(spec)
    summary = run_amg(
        args.inputs,
        ModelSource(spec.name, checkpoint, str(device)),
        OutputOptions(args.out, args.format, args.overlay, args.overwrite),
        amg,
        engine=args.engine,
        ray=ray_options,
        progress=not args.quiet,
    )
    where = summary.coco_file if summary.coco_file is not None else args.out
    errors = f" (see {args.out / ERRORS_FILE})" if summary.failed else ""
    print(f"amg: {summary.line()}{errors}; {args.format} output in {where}")
    nothing_read = summary.failed and summary.processed == 0 and summary.skipped == 0
    return EXIT_NOTHING_READ if nothing_read else 0
