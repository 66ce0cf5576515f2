"""`segany predict IMAGE`: segment one image from point and box prompts, write PNG masks.

Every check that needs no model (prompts, output paths, model name, checkpoint, the image
itself) runs before the model is built, so a typo fails in a second, not after a large
checkpoint has been loaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from segany.cli.errors import UsageError
from segany.cli.mask_info import mask_area, mask_bbox_xyxy
from segany.cli.model_options import (
    add_model_arguments,
    resolve_device,
    resolve_model,
    warn_random_weights,
)
from segany.cli.parsing import BOX_FORM, POINT_FORM, check_inside_image, parse_prompts
from segany.formats.image import read_image
from segany.registry import ModelSpec

if TYPE_CHECKING:
    import torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment an image from point and box prompts",
        description="Segment IMAGE from point and/or box prompts (xy pixels of the image as "
        "displayed, EXIF rotation applied) and write the mask with the best predicted IoU as "
        "an 8-bit PNG (0 background, 255 object).",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="image file (PNG, JPEG, ...)")
    add_model_arguments(parser)
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help=f"a point prompt, {POINT_FORM}; repeat for several points",
    )
    parser.add_argument(
        "--box", action="append", default=[], metavar="X0,Y0,X1,Y1", help=f"a box, {BOX_FORM}"
    )
    parser.add_argument(
        "--single",
        action="store_true",
        help="predict one mask instead of three candidates (better for several points)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="MASK.png", help="where to write the mask"
    )
    parser.add_argument(
        "--overlay",
        type=Path,
        metavar="OVERLAY.png",
        help="also write the image with the mask and prompts drawn on it (.png, .jpg, ...)",
    )
    parser.add_argument(
        "--all-masks",
        action="store_true",
        help="also write every candidate mask, as MASK_0.png, MASK_1.png, ...",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON report to stdout: per mask its predicted IoU, area in pixels, "
        "bbox_xyxy (x1, y1 exclusive) and files",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    coords, labels, box = parse_prompts(args.point, args.box)
    check_outputs(args.image, args.out, args.overlay)
    spec, checkpoint = resolve_model(args)
    device = resolve_device(args.device)
    image = read_image(args.image)
    check_inside_image(coords, box, *image.size)

    if checkpoint is None:
        warn_random_weights(spec)
    masks, scores = segment(spec, checkpoint, device, image, coords, labels, box, args.single)
    chosen = int(np.argmax(scores))

    written: list[list[Path]] = [[] for _ in masks]  # the files each mask went to
    save_mask(masks[chosen], args.out)
    written[chosen].append(args.out)
    if args.all_masks:
        for i, mask in enumerate(masks):
            path = args.out.with_name(f"{args.out.stem}_{i}{args.out.suffix}")
            save_mask(mask, path)
            written[i].append(path)
    if args.overlay is not None:
        from segany.visualize import draw_overlay

        overlay = draw_overlay(image, masks[chosen], coords, labels, box)
        _save(overlay, args.overlay, "overlay")

    width, height = image.size
    points = (
        []
        if coords is None
        else [[x, y, int(lb)] for (x, y), lb in zip(coords, labels, strict=True)]
    )
    report = {
        "model": spec.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "image": {"path": str(args.image), "width": width, "height": height},
        "prompts": {"points": points, "box_xyxy": None if box is None else box.tolist()},
        "chosen": chosen,
        "masks": [
            describe_mask(i, mask, float(score), i == chosen, paths)
            for i, (mask, score, paths) in enumerate(zip(masks, scores, written, strict=True))
        ],
        "out": str(args.out),
        "overlay": str(args.overlay) if args.overlay is not None else None,
    }
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    return 0


def segment(
    spec: ModelSpec,
    checkpoint: Path | None,
    device: torch.device,
    image: Image.Image,
    coords: np.ndarray | None,
    labels: np.ndarray | None,
    box: np.ndarray | None,
    single: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Build the model and predict: masks (C, H, W) bool and predicted IoUs (C,), C = 3 or 1.

    Prompts are in the original image frame: coords (N, 2) xy, labels (N,), box (4,) xyxy.
    Random weights (no checkpoint) are seeded, so a demo gives the same masks every run.
    """
    import torch

    from segany.predictor import SamPredictor
    from segany.registry import build_sam

    if checkpoint is None:
        torch.manual_seed(0)
    predictor = SamPredictor(build_sam(spec.name, checkpoint, device, pretrained=False))
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(coords, labels, box, multimask_output=not single)
    return masks, scores


def describe_mask(
    index: int, mask: np.ndarray, score: float, chosen: bool, paths: list[Path]
) -> dict[str, Any]:
    """One (H, W) mask for the report; `bbox_xyxy` has exclusive x1, y1 (see mask_bbox_xyxy)."""
    bbox = mask_bbox_xyxy(mask)
    return {
        "index": index,
        "score": round(score, 6),
        "area": mask_area(mask),
        "bbox_xyxy": list(bbox) if bbox is not None else None,
        "chosen": chosen,
        "paths": [str(p) for p in paths],
    }


def format_summary(report: dict[str, Any]) -> str:
    """A few human-readable lines: the model, the image, each mask, the files written."""
    image = report["image"]
    masks = report["masks"]
    lines = [
        f"{image['path']} ({image['width']}x{image['height']}), model {report['model']}: "
        f"{len(masks)} mask{'s' if len(masks) > 1 else ''}"
    ]
    for m in masks:
        bbox = "empty" if m["bbox_xyxy"] is None else "box " + ",".join(map(str, m["bbox_xyxy"]))
        mark = "  <- best, written to " + report["out"] if m["chosen"] else ""
        lines.append(
            f"  mask {m['index']}: predicted IoU {m['score']:.3f}, {m['area']} px, {bbox}{mark}"
        )
    if report["overlay"] is not None:
        lines.append(f"overlay written to {report['overlay']}")
    return "\n".join(lines)


def check_outputs(image: Path, out: Path, overlay: Path | None) -> None:
    """Refuse output paths that cannot be written, or would overwrite the input or each other."""
    if out.suffix.lower() != ".png":
        raise UsageError(
            f"--out {out} must end in .png: masks are written as lossless 8-bit PNG "
            "(a lossy format such as JPEG would blur the 0/255 values)"
        )
    paths = [("--out", out)]
    if overlay is not None:
        known = Image.registered_extensions()
        if known.get(overlay.suffix.lower()) not in Image.SAVE:
            raise UsageError(
                f"--overlay {overlay}: cannot write images of type {overlay.suffix or '(none)'!r}; "
                "use .png or .jpg"
            )
        paths.append(("--overlay", overlay))
    for option, path in paths:
        if not path.parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {path.parent} does not exist")
        if path.resolve() == image.resolve():
            raise UsageError(f"{option} {path} would overwrite the input image")
    if overlay is not None and overlay.resolve() == out.resolve():
        raise UsageError("--out and --overlay name the same file; give two different paths")


def save_mask(mask: np.ndarray, path: Path) -> None:
    """Write an (H, W) bool mask as an 8-bit grayscale PNG: 0 background, 255 object."""
    _save(Image.fromarray(mask.astype(np.uint8) * 255), path, "mask")


def _save(image: Image.Image, path: Path, what: str) -> None:
    try:
        image.save(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot write the {what} to {path}: {e}") from None
