"""The model options shared by the commands that run a model (`predict`, `amg`, `eval`,
`serve`, `geo`): --model, --checkpoint, --random-weights, --no-download, --device, and how they
resolve to a weights file.

Resolution needs no model, so a typo fails before a large checkpoint is loaded. A model whose
official checkpoint is not downloaded yet is downloaded (and verified) on first use, unless
--no-download or `SEGANY_OFFLINE=1`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from segany.cli.errors import UsageError
from segany.errors import CheckpointError, DownloadError
from segany.registry import (
    DEFAULT_MODEL,
    ModelSpec,
    WeightsNotFoundError,
    get_spec,
    list_models,
    resolve_weights,
)

if TYPE_CHECKING:
    import torch

    from segany.modeling.sam import Sam


OFFLINE_ENV = "SEGANY_OFFLINE"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Register --model, --checkpoint, --random-weights, --device and --no-edge-refinement
    on `parser`."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="weights file (.pth/.pt/.safetensors); default: the weights shipped with segany "
        "(segany-tiny-v2, segany-tiny) or the model's downloaded official checkpoint (`segany "
        "download NAME`)",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="run a model untrained (random weights, e.g. test_tiny): meaningless masks, for "
        "tests and demos",
    )
    parser.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never download: fail when the model's official checkpoint is not downloaded yet "
        f"(also ${OFFLINE_ENV}=1); by default it is downloaded and verified on first use",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto")
    parser.add_argument(
        "--no-edge-refinement",
        dest="edge_refinement",
        action="store_false",
        help="plain thresholded masks, without the edge refinement the model's spec sets "
        "(segany-tiny-v2: a guided filter over the image; about half the time of a click on "
        "large masks, outlines less close to the colour edges)",
    )


def resolve_model(args: argparse.Namespace) -> tuple[ModelSpec, Path | None]:
    """The spec and weights file named by --model / --checkpoint / --random-weights (None:
    random weights, after a warning on stderr that the masks are meaningless)."""
    spec = get_spec(args.model)
    download = getattr(args, "download", True) and os.environ.get(OFFLINE_ENV, "") in ("", "0")
    checkpoint = resolve_checkpoint(spec, args.checkpoint, args.random_weights, download)
    return spec, checkpoint


def warn_random_weights(spec: ModelSpec) -> None:
    print(
        f"warning: {spec.name} runs with random weights (--random-weights): the masks are "
        "meaningless, for tests and demos only",
        file=sys.stderr,
    )


def resolve_checkpoint(
    spec: ModelSpec, checkpoint: Path | None, random_weights: bool, download: bool = False
) -> Path | None:
    """The weights file to load for `spec`, or None for random weights: the library's one rule
    (`segany.registry.resolve_weights`), with the command line's wording for what to do.
    download: fetch and verify the official checkpoint when it is not downloaded yet
    (`segany.download.fetch_checkpoint`, announced on stderr) instead of failing.

    --random-weights only for models that have no official weights (a random SAM is never
    what a user of vit_b wants).
    """
    if random_weights:
        if checkpoint is not None:
            raise UsageError("give either --checkpoint or --random-weights, not both")
        if spec.url is not None:
            untrained = [n for n in list_models() if get_spec(n).url is None]
            raise UsageError(
                f"--random-weights is only for models without official weights "
                f"({', '.join(untrained)}); for {spec.name} run `segany download {spec.name}` "
                "or pass --checkpoint PATH"
            )
        return resolve_weights(spec, None, pretrained=False)
    try:
        return resolve_weights(spec, checkpoint, pretrained=True)
    except WeightsNotFoundError as e:
        if not (download and e.reason == "not_downloaded"):
            raise CheckpointError(_cli_advice(e)) from None
        return _download_first_use(spec, e)


def _download_first_use(spec: ModelSpec, error: WeightsNotFoundError) -> Path:
    from segany.download import fetch_checkpoint

    size = f" ({spec.size_bytes / 2**20:.0f} MiB)" if spec.size_bytes else ""
    print(
        f"{spec.name}: downloading its official checkpoint{size} once, to {error.path} "
        f"(--no-download or {OFFLINE_ENV}=1 to never download)",
        file=sys.stderr,
    )
    try:
        return fetch_checkpoint(spec).path
    except DownloadError as e:
        raise CheckpointError(
            f"{e}\n{_cli_advice(error)} (it can be fetched on another machine and copied there)"
        ) from None


def _cli_advice(error: WeightsNotFoundError) -> str:
    spec = error.spec
    if error.reason == "missing":
        return (
            f"the weights of {spec.name} that ship with segany are missing ({error.path}); "
            "reinstall segany, or pass --checkpoint PATH"
        )
    if error.reason == "none":
        return (
            f"model {spec.name} has no official weights: pass --checkpoint PATH, or "
            "--random-weights to run it untrained (meaningless masks, for tests and demos)"
        )
    size = f" ({spec.size_bytes / 2**20:.0f} MiB)" if spec.size_bytes else ""
    return (
        f"no checkpoint for {spec.name}: it is not downloaded (looked for {error.path}). "
        f"Run `segany download {spec.name}`{size} first, or pass --checkpoint PATH"
    )


def load_model(
    spec: ModelSpec, checkpoint: Path | None, device: torch.device, edge_refinement: bool
) -> Sam:
    """Build the model the options resolved to; random weights (checkpoint None) are announced
    on stderr and always the same (seed 0), so a demo gives the same masks every run.
    edge_refinement: False for --no-edge-refinement (see `build_sam`)."""
    from segany.registry import build_sam

    if checkpoint is None:
        warn_random_weights(spec)
    return build_sam(
        spec.name, checkpoint, device, pretrained=False, seed=0, edge_refinement=edge_refinement
    )
