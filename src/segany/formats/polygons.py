"""Binary masks as polygons: the outlines COCO's polygon segmentations, the browser and GIS
tools want. Pure functions over NumPy arrays (OpenCV's border following, Suzuki & Abe 1985)."""

from __future__ import annotations

import numpy as np

from segany.errors import FormatError
from segany.masks.extent import mask_bbox_xyxy

# An outline needs three corners to enclose any area.
MIN_VERTICES = 3


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[list[float]]:
    """The outer outlines of an (H, W) bool mask's connected regions, largest first.

    Each polygon is [x0, y0, x1, y1, ...] in pixel-corner coordinates of the image (a lone
    pixel at column c, row r is the square from (c, r) to (c + 1, r + 1)), the convention of
    COCO's polygons: `pycocotools` rasterises them back to nearly the same mask. Holes are not
    represented (COCO polygons cannot carry them; the RLE keeps them). `tolerance` > 0
    simplifies each outline (Douglas-Peucker, pixels). The outlines are traced in the mask's
    tight box only (the same outlines, shifted back), not over the whole image.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise FormatError(f"expected an (H, W) mask, got shape {mask.shape}")
    box = mask_bbox_xyxy(mask)
    if box is None:
        return []
    x0, y0, x1, y1 = box
    # Contours trace pixel centres; doubling the grid lets them follow pixel corners instead.
    upscaled = mask[y0:y1, x0:x1].astype(np.uint8).repeat(2, axis=0).repeat(2, axis=1)
    padded = np.pad(upscaled, 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True):
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, 2 * tolerance, True)
        points = contour.reshape(-1, 2).astype(np.float64)
        if len(points) < MIN_VERTICES:
            continue
        # Undo the padding; on the doubled grid an outline pixel 2r is the top/left half of
        # pixel r (corner r) and 2r + 1 its bottom/right half (corner r + 1); then the crop.
        polygons.append(np.ceil((points - 1) / 2) + (x0, y0))
    return [polygon.reshape(-1).tolist() for polygon in polygons]
