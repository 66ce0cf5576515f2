"""Small-region cleanup of generated masks: fill small holes, drop small islands, then
re-run NMS preferring masks that needed no change (as the reference generator does)."""

from __future__ import annotations

import torch

from segany.masks.boxes import masks_to_boxes
from segany.masks.candidates import MaskCandidates
from segany.masks.nms import batched_nms
from segany.masks.regions import remove_small_regions
from segany.masks.rle import masks_to_rle, rle_to_mask


def remove_small_regions_from_candidates(
    candidates: MaskCandidates, min_area: int, nms_thresh: float
) -> MaskCandidates:
    """Clean each mask; NMS with unchanged masks scored 1 and changed ones 0; kept changed
    masks get their new RLE and box. One full-size mask is decoded at a time."""
    if len(candidates) == 0:
        return candidates
    new_rles, new_boxes, scores = [], [], []
    for rle in candidates.rles:
        mask = rle_to_mask(rle)
        mask, changed_holes = remove_small_regions(mask, min_area, "holes")
        mask, changed_islands = remove_small_regions(mask, min_area, "islands")
        changed = changed_holes or changed_islands
        tensor = torch.as_tensor(mask)[None]
        new_boxes.append(masks_to_boxes(tensor)[0])
        new_rles.append(masks_to_rle(tensor)[0] if changed else rle)
        scores.append(0.0 if changed else 1.0)
    boxes = torch.stack(new_boxes)
    keep = batched_nms(
        boxes.float(),
        torch.tensor(scores),
        torch.zeros(len(scores), dtype=torch.int64),
        nms_thresh,
    )
    cleaned = MaskCandidates(
        rles=new_rles,
        boxes=torch.where(torch.tensor(scores)[:, None] == 0.0, boxes, candidates.boxes),
        iou=candidates.iou,
        stability=candidates.stability,
        points=candidates.points,
        crop_boxes=candidates.crop_boxes,
    )
    return cleaned.filter(keep)
