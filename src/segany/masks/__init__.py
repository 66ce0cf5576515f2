"""Automatic mask generation: the generator and the pure, model-free functions it is made of."""

from segany.masks.boxes import (
    box_xyxy_to_xywh,
    is_box_near_crop_edge,
    masks_to_boxes,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from segany.masks.config import AmgConfig
from segany.masks.grids import (
    build_all_layer_point_grids,
    build_point_grid,
    generate_crop_boxes,
)
from segany.masks.regions import remove_small_regions
from segany.masks.rle import (
    coco_rle_to_mask,
    masks_to_rle,
    rle_area,
    rle_to_box,
    rle_to_coco,
    rle_to_mask,
)
from segany.masks.stability import stability_score

__all__ = [
    "AmgConfig",
    "box_xyxy_to_xywh",
    "build_all_layer_point_grids",
    "build_point_grid",
    "coco_rle_to_mask",
    "generate_crop_boxes",
    "is_box_near_crop_edge",
    "masks_to_boxes",
    "masks_to_rle",
    "remove_small_regions",
    "rle_area",
    "rle_to_box",
    "rle_to_coco",
    "rle_to_mask",
    "stability_score",
    "uncrop_boxes_xyxy",
    "uncrop_points",
]
