"""The model options shared by the commands that run a model (`predict`, `amg`): --model,
--checkpoint, --random-weights, --device, and how they resolve to a weights file and a device.

Resolution needs no model, so a typo fails before a large checkpoint is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from segany.cli.errors import UsageError
from segany.download import checkpoint_path
from segany.errors import CheckpointError
from segany.registry import DEFAULT_MODEL, ModelSpec, get_spec, list_models

if TYPE_CHECKING:
    import torch


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Register --model, --checkpoint, --random-weights and --device on `parser`."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="weights file (.pth/.pt/.safetensors); default: the weights shipped with segany "
        "(segany-tiny) or the model's downloaded official checkpoint (`segany download NAME`)",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="run a model without official weights (segany-tiny, test_tiny) untrained: "
        "meaningless masks, for tests and demos",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps or auto")


def resolve_model(args: argparse.Namespace) -> tuple[ModelSpec, Path | None]:
    """The spec and weights file named by --model / --checkpoint / --random-weights (None:
    random weights, after a warning on stderr that the masks are meaningless)."""
    spec = get_spec(args.model)
    checkpoint = resolve_checkpoint(spec, args.checkpoint, args.random_weights)
    return spec, checkpoint


def warn_random_weights(spec: ModelSpec) -> None:
    print(
        f"warning: {spec.name} runs with random weights (--random-weights): the masks are "
        "meaningless, for tests and demos only",
        file=sys.stderr,
    )


def resolve_checkpoint(
    spec: ModelSpec, checkpoint: Path | None, random_weights: bool
) -> Path | None:
    """The weights file to load for `spec`, or None for random weights.

    Order: --checkpoint, else the weights shipped with segany, else the downloaded official
    file; --random-weights only for models that have no official weights (a random SAM is
    never what a user of vit_b wants).
    """
    untrained = [n for n in list_models() if get_spec(n).url is None]
    if random_weights:
        if checkpoint is not None:
            raise UsageError("give either --checkpoint or --random-weights, not both")
        if spec.url is not None:
            raise UsageError(
                f"--random-weights is only for models without official weights "
                f"({', '.join(untrained)}); for {spec.name} run `segany download {spec.name}` "
                "or pass --checkpoint PATH"
            )
        return None
    if checkpoint is not None:
        return checkpoint.expanduser()  # build_sam explains a missing or unfit file
    if spec.bundled_path is not None:
        if not spec.bundled_path.is_file():
            raise CheckpointError(
                f"the weights of {spec.name} that ship with segany are missing "
                f"({spec.bundled_path}); reinstall segany, or pass --checkpoint PATH"
            )
        return spec.bundled_path
    if spec.url is None:
        raise CheckpointError(
            f"model {spec.name} has no official weights: pass --checkpoint PATH, or "
            "--random-weights to run it untrained (meaningless masks, for tests and demos)"
        )
    cached = checkpoint_path(spec)
    if not cached.is_file():
        size = f" ({spec.size_bytes / 2**20:.0f} MiB)" if spec.size_bytes else ""
        raise CheckpointError(
            f"no checkpoint for {spec.name}: it is not downloaded (looked for {cached}). "
            f"Run `segany download {spec.name}`{size} first, or pass --checkpoint PATH"
        )
    return cached


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else must be a usable torch device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(
            f"--device {name!r} is not a device; use cpu, cuda, cuda:1, mps or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
    return device
