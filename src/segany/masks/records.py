"""Turn `MaskCandidates` into the reference's output records."""

from __future__ import annotations

from typing import Any

from segany.masks.boxes import box_xyxy_to_xywh
from segany.masks.candidates import MaskCandidates
from segany.masks.rle import rle_area, rle_to_coco, rle_to_mask

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


def encode_segmentation(rle: dict, output_mode: str) -> Any:
    """An uncompressed RLE as the requested output: (H, W) bool array, the RLE itself, or a
    pycocotools-compressed RLE with str counts."""
    if output_mode == "binary_mask":
        return rle_to_mask(rle)
    if output_mode == "coco_rle":
        return rle_to_coco(rle)
    if output_mode == "uncompressed_rle":
        return rle
    raise ValueError(f"unknown output_mode {output_mode!r}; expected one of {OUTPUT_MODES}")


def to_records(candidates: MaskCandidates, output_mode: str) -> list[dict[str, Any]]:
    """One dict per mask: segmentation, area, bbox (XYWH), predicted_iou, point_coords,
    stability_score, crop_box (XYWH); all plain Python numbers and lists."""
    boxes = box_xyxy_to_xywh(candidates.boxes).tolist()
    crop_boxes = box_xyxy_to_xywh(candidates.crop_boxes).tolist()
    ious = candidates.iou.tolist()
    stabilities = candidates.stability.tolist()
    points = candidates.points.tolist()
    return [
        {
            "segmentation": encode_segmentation(rle, output_mode),
            "area": rle_area(rle),
            "bbox": boxes[i],
            "predicted_iou": ious[i],
            "point_coords": [points[i]],
            "stability_score": stabilities[i],
            "crop_box": crop_boxes[i],
        }
        for i, rle in enumerate(candidates.rles)
    ]
