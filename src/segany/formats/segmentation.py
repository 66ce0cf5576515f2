"""A generated mask's `segmentation` in whichever form the generator gave it, as the form a
writer needs: a COCO RLE with str counts (JSON formats) or an (H, W) bool array (PNG, overlays).

Accepted forms are the generator's three output modes: "binary_mask" ((H, W) bool array),
"uncompressed_rle" ({"size": [H, W], "counts": [ints]}, column-major runs starting with
background) and "coco_rle" ({"size": [H, W], "counts": str}, pycocotools' compressed string).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segany.errors import FormatError


def to_coco_rle(segmentation: Any) -> dict[str, Any]:
    """The segmentation as {"size": [H, W], "counts": str}, ready for JSON."""
    from segany.masks.rle import masks_to_rle, rle_to_coco

    if isinstance(segmentation, np.ndarray):
        import torch

        from segany.masks.extent import mask_bbox_xyxy

        mask = _check_mask(segmentation)
        # Runs are found in the mask's tight box only (masks_to_rle places them in the image).
        x0, y0, x1, y1 = mask_bbox_xyxy(mask) or (0, 0, mask.shape[1], mask.shape[0])
        crop = torch.as_tensor(np.ascontiguousarray(mask[y0:y1, x0:x1]))[None]  # (1, h, w)
        return rle_to_coco(masks_to_rle(crop, (x0, y0), mask.shape)[0])
    size, counts = _size_and_counts(segmentation)
    if isinstance(counts, list):
        return rle_to_coco({"size": size, "counts": counts})
    if isinstance(counts, bytes):  # pycocotools' own encoder returns bytes
        counts = counts.decode("ascii")
    return {"size": size, "counts": counts}


def to_binary_mask(segmentation: Any) -> np.ndarray:
    """The segmentation as an (H, W) bool array."""
    from segany.masks.rle import coco_rle_to_mask, rle_to_mask

    if isinstance(segmentation, np.ndarray):
        return _check_mask(segmentation)
    size, counts = _size_and_counts(segmentation)
    if isinstance(counts, list):
        return rle_to_mask({"size": size, "counts": counts})
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return coco_rle_to_mask({"size": size, "counts": counts})


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if mask.ndim != 2:
        raise FormatError(f"a binary mask must be (H, W), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def _size_and_counts(segmentation: Any) -> tuple[list[int], Any]:
    if not isinstance(segmentation, dict) or not {"size", "counts"} <= segmentation.keys():
        raise FormatError(
            "a segmentation must be an (H, W) bool array or an RLE dict with 'size' and "
            f"'counts', got {type(segmentation).__name__}"
        )
    height, width = (int(v) for v in segmentation["size"])
    counts = segmentation["counts"]
    if not isinstance(counts, list | str | bytes):
        counts = [int(c) for c in counts]  # a NumPy array of run lengths
    return [height, width], counts
