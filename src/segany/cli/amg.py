"""`segany amg INPUT... --out DIR`: automatic masks for many images (the data engine).

Every check that needs no model (inputs, options, model, checkpoint, Ray installed) runs
before a model is built. The work itself is `segany.engine.run_amg`, usable from Python.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, resolve_model, warn_random_weights
from segany.devices import resolve_device
from segany.engine import ENGINES, FORMATS, ModelSource, OutputOptions, RayOptions, run_amg
from segany.engine.outputs import COCO_FILE, ERRORS_FILE, OVERLAYS
from segany.errors import CheckpointError
from segany.formats.image import IMAGE_EXTENSIONS
from segany.formats.manifest import MANIFEST_FILE
from segany.masks.config import AmgConfig
from segany.registry import ModelSpec

# Exit status when images were found but not one could be read.
EXIT_NOTHING_READ = 1

# Flags for AmgConfig's fields, typed by their default; the defaults are left unset (None) on
# the command line so that the model's own defaults apply (`AmgConfig.for_model`).
_FLAG_TYPES = {int: int, float: float}


def cli_options() -> list[dataclasses.Field]:
    """The AmgConfig fields that `segany amg` has a flag for."""
    return [f for f in dataclasses.fields(AmgConfig) if f.metadata.get("cli", True)]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "amg",
        help="automatic masks for many images (segment everything)",
        description="Segment everything in each image (SAM prompted with a grid of points) and "
        "write the masks. INPUT files and folders (searched recursively for "
        f"{', '.join(IMAGE_EXTENSIONS)}) are processed in sorted order; an image whose outputs "
        "exist is skipped, so an interrupted run resumes where it stopped. Unreadable images "
        f"are reported on stderr and in DIR/{ERRORS_FILE} and skipped. DIR/{MANIFEST_FILE} "
        "records where every image is, so `--data sa1b:DIR` (or coco:DIR/annotations.json) "
        "reads the masks back with their images for `segany eval` and `segany train`.",
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

    add_amg_arguments(
        parser,
        "mask generation (defaults: SAM's, or the model's own where it has them; see "
        "`segany models --json`, amg_defaults)",
    )
    parser.set_defaults(run=run)


def add_amg_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """A group of flags, one per `cli_options()` field, all unset by default (None: the
    model's default applies; see `amg_config`)."""
    group = parser.add_argument_group(title)
    for option in cli_options():
        flag = "--" + option.name.replace("_", "-")
        if isinstance(option.default, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{option.metadata['help']} (default {'on' if option.default else 'off'})",
            )
            continue
        kind = int if isinstance(option.default, int) else float
        group.add_argument(
            flag,
            type=kind,
            metavar="N" if kind is int else "X",
            help=f"{option.metadata['help']} (SAM's default {option.default:.4g})",
        )


def amg_config(args: argparse.Namespace, spec: ModelSpec) -> AmgConfig:
    """The generator options: SAM's defaults, then the model's, then the flags given;
    validated (`ConfigError` if out of range)."""
    given = {option.name: getattr(args, option.name) for option in cli_options()}
    config = AmgConfig.for_model(spec, **given)
    config.validate(has_point_grids=False)
    return config


def run(args: argparse.Namespace) -> int:
    spec, checkpoint = resolve_model(args)
    amg = amg_config(args, spec)
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
        ModelSource(
            spec.name,
            checkpoint,
            str(device),
            pretrained=checkpoint is not None,
            edge_refinement=args.edge_refinement,
        ),
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
