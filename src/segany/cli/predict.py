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
from segany.cli.model_options import add_model_arguments, load_model, resolve_model
from segany.cli.parsing import BOX_FORM, POINT_FORM, check_inside_image, parse_prompts
from segany.devices import resolve_device
from segany.formats.image import read_image
from segany.masks.extent import mask_area, mask_bbox_xyxy
from segany.registry import ModelSpec

if TYPE_CHECKING:
    from segany.modeling.sam import Sam


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment an image from point and box prompts",
        description="Segment IMAGE from point and/or box prompts (xy pixels of the image as "
        "displayed, EXIF rotation applied) and write the mask with the best predicted IoU as "
        "an 8-bit PNG (0 background, 255 object). Each --box is one object; with several, "
        "MASK.png is the union of the objects' masks.",
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
        "--box",
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1",
        help=f"a box, {BOX_FORM}; repeat for several objects (the points go with every box)",
    )
    parser.add_argument(
        "--single",
        action="store_true",
        help="the single-mask output alone instead of the candidates (3 for one point or a "
        "box, 4 for several points, best first by the click rule)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="MASK.png",
        help="where to write the mask (optional with --json or --overlay)",
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
        help="also write every candidate mask, as MASK_0.png, MASK_1.png, ... (with several "
        "boxes MASK_B_0.png, ... for box B)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON report to stdout: per mask its predicted IoU, area in pixels, "
        "bbox_xyxy (x1, y1 exclusive) and files",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not keep or reuse the image's embedding (by default it is kept in "
        "$SEGANY_HOME/embeddings, so another prompt on the same image skips the encoder)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    coords, labels, boxes = parse_prompts(args.point, args.box)
    check_outputs(args.image, args.out, args.overlay, args.json, args.all_masks)
    spec, checkpoint = resolve_model(args)
    device = resolve_device(args.device)
    image = read_image(args.image)
    check_inside_image(coords, boxes, *image.size)

    model = load_model(spec, checkpoint, device, args.edge_refinement)
    cache = None if args.no_cache else embedding_cache(args.image, spec, checkpoint)
    masks, scores, chosen, cached = segment(model, image, coords, labels, boxes, args.single, cache)
    union = np.any([object_masks[c] for object_masks, c in zip(masks, chosen, strict=True)], 0)

    written: list[list[list[Path]]] = [[[] for _ in m] for m in masks]  # files per mask
    if args.out is not None:
        save_mask(union, args.out)
        for b, c in enumerate(chosen):
            written[b][c].append(args.out)
        if args.all_masks:
            for b, object_masks in enumerate(masks):
                for i, mask in enumerate(object_masks):
                    tag = f"{i}" if len(masks) == 1 else f"{b}_{i}"
                    path = args.out.with_name(f"{args.out.stem}_{tag}{args.out.suffix}")
                    save_mask(mask, path)
                    written[b][i].append(path)
    if args.overlay is not None:
        from segany.visualize import draw_overlay

        _save(draw_overlay(image, union, coords, labels, boxes), args.overlay, "overlay")

    report = build_report(args, spec, checkpoint, image, coords, labels, boxes)
    report["embedding_cached"] = cached
    report["objects"] = [
        {
            "box_xyxy": None if boxes is None else boxes[b].tolist(),
            "chosen": chosen[b],
            "masks": [
                describe_mask(i, mask, float(score), i == chosen[b], paths)
                for i, (mask, score, paths) in enumerate(
                    zip(masks[b], scores[b], written[b], strict=True)
                )
            ],
        }
        for b in range(len(masks))
    ]
    if len(masks) == 1:  # one object: its masks at the top level too
        report["chosen"], report["masks"] = chosen[0], report["objects"][0]["masks"]
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    return 0


def build_report(
    args: argparse.Namespace,
    spec: ModelSpec,
    checkpoint: Path | None,
    image: Image.Image,
    coords: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
) -> dict[str, Any]:
    """The report's fields that describe the run (model, image, prompts, files)."""
    width, height = image.size
    points = (
        []
        if coords is None
        else [[x, y, int(lb)] for (x, y), lb in zip(coords, labels, strict=True)]
    )
    return {
        "model": spec.name,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "image": {"path": str(args.image), "width": width, "height": height},
        "prompts": {
            "points": points,
            "box_xyxy": boxes[0].tolist() if boxes is not None and len(boxes) == 1 else None,
            "boxes_xyxy": [] if boxes is None else boxes.tolist(),
        },
        "out": str(args.out) if args.out is not None else None,
        "overlay": str(args.overlay) if args.overlay is not None else None,
    }


def embedding_cache(image_path: Path, spec: ModelSpec, checkpoint: Path | None) -> tuple[Any, str]:
    """The on-disk embedding cache of the command line ($SEGANY_HOME/embeddings; no memory
    tier: one process, one image) and the key of this image for this model and weights."""
    from segany.cache import EmbeddingCache, image_key, weights_id
    from segany.paths import cache_dir

    weights = weights_id(checkpoint) if checkpoint is not None else "random-seed-0"
    key = image_key(image_path.read_bytes(), spec.name, weights)
    return EmbeddingCache(cache_dir() / "embeddings", max_memory_bytes=0), key


def segment(
    model: Sam,
    image: Image.Image,
    coords: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
    single: bool,
    cache: tuple[Any, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int], bool]:
    """Predict: masks (B, C, H, W) bool and predicted IoUs (B, C), one row per box (B = 1
    without boxes); the index of each object's chosen mask; and whether the embedding came from
    `cache` ((EmbeddingCache, key), or None to always run the encoder).

    One object (at most one box): the click rule's candidates best first
    (`segany.interactive.predict_edit`: 3 for one point or a box, 4 for several points), the
    first chosen. Several boxes: 3 candidates each, the highest predicted IoU chosen. `single`:
    the single-mask output alone. Prompts are in the original image frame: coords (N, 2) xy,
    labels (N,), boxes (B, 4) xyxy.
    """
    from segany.cache import encode, restore
    from segany.interactive import predict_edit
    from segany.predictor import SamPredictor

    predictor = SamPredictor(model)
    cached = False
    if cache is None:
        predictor.set_image(image)
    else:
        store, key = cache
        embedding, cached = store.get_or_compute(key, lambda: encode(predictor, image))
        restore(predictor, embedding, image)
    if not single and (boxes is None or len(boxes) == 1):
        box = None if boxes is None else boxes[0]
        masks, scores, _ = predict_edit(predictor, coords, labels, box)
        return masks[None], scores[None], [0], cached
    masks, scores, _ = predictor.predict(coords, labels, boxes, multimask_output=not single)
    if boxes is None or len(boxes) == 1:
        masks, scores = masks[None], scores[None]
    return masks, scores, [int(np.argmax(s)) for s in scores], cached


def describe_mask(
    index: int, mask: np.ndarray, score: float, chosen: bool, paths: list[Path]
) -> dict[str, Any]:
    """One (H, W) mask for the report; `bbox_xyxy` has exclusive x1, y1 (`mask_bbox_xyxy`)."""
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
    """A few human-readable lines: the model, the image, each object's masks, the files."""
    image = report["image"]
    objects = report["objects"]
    n_masks = sum(len(o["masks"]) for o in objects)
    lines = [
        f"{image['path']} ({image['width']}x{image['height']}), model {report['model']}: "
        f"{n_masks} mask{'s' if n_masks > 1 else ''}"
    ]
    where = f", written to {report['out']}" if report["out"] is not None else ""
    for b, obj in enumerate(objects):
        indent = "  "
        if len(objects) > 1:
            lines.append(f"  box {b} ({','.join(f'{v:g}' for v in obj['box_xyxy'])}):")
            indent = "    "
        for m in obj["masks"]:
            bbox = (
                "empty" if m["bbox_xyxy"] is None else "box " + ",".join(map(str, m["bbox_xyxy"]))
            )
            mark = f"  <- best{where}" if m["chosen"] else ""
            lines.append(
                f"{indent}mask {m['index']}: predicted IoU {m['score']:.3f}, {m['area']} px, "
                f"{bbox}{mark}"
            )
    if len(objects) > 1 and report["out"] is not None:
        lines.append(f"the union of the {len(objects)} best masks is in {report['out']}")
    if report["overlay"] is not None:
        lines.append(f"overlay written to {report['overlay']}")
    return "\n".join(lines)


def check_outputs(
    image: Path, out: Path | None, overlay: Path | None, json_report: bool, all_masks: bool
) -> None:
    """Refuse output paths that cannot be written, or would overwrite the input or each other,
    and a command line that would produce nothing."""
    if out is None:
        if all_masks:
            raise UsageError("--all-masks names its files after --out MASK.png: give --out")
        if not json_report and overlay is None:
            raise UsageError(
                "nothing to write: give --out MASK.png, --overlay OVERLAY.png and/or --json"
            )
    elif out.suffix.lower() != ".png":
        raise UsageError(
            f"--out {out} must end in .png: masks are written as lossless 8-bit PNG "
            "(a lossy format such as JPEG would blur the 0/255 values)"
        )
    paths = [("--out", out)] if out is not None else []
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
    if overlay is not None and out is not None and overlay.resolve() == out.resolve():
        raise UsageError("--out and --overlay name the same file; give two different paths")


def save_mask(mask: np.ndarray, path: Path) -> None:
    """Write an (H, W) bool mask as an 8-bit grayscale PNG: 0 background, 255 object."""
    _save(Image.fromarray(mask.astype(np.uint8) * 255), path, "mask")


def _save(image: Image.Image, path: Path, what: str) -> None:
    try:
        image.save(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot write the {what} to {path}: {e}") from None
