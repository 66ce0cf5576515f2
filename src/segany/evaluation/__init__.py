"""Evaluation of point-prompted segmentation: 1-point and oracle mIoU, NoC@85 / NoC@90, the
boundary F-score; AR@100 of automatic masks in `proposals`."""

from segany.evaluation.boundary import boundary_fscore, boundary_pixels
from segany.evaluation.evaluator import (
    NOC_THRESHOLDS,
    TINY_SIDE,
    EvalConfig,
    EvalSummary,
    Evaluator,
    MaskResult,
)
from segany.evaluation.metrics import click_from_error, interior_point, iou

__all__ = [
    "NOC_THRESHOLDS",
    "TINY_SIDE",
    "EvalConfig",
    "EvalSummary",
    "Evaluator",
    "MaskResult",
    "boundary_fscore",
    "boundary_pixels",
    "click_from_error",
    "interior_point",
    "iou",
]
