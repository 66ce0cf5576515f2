"""Evaluation of point-prompted segmentation: 1-point and oracle mIoU, NoC@85 / NoC@90."""

from segany.evaluation.evaluator import (
    NOC_THRESHOLDS,
    EvalConfig,
    EvalSummary,
    Evaluator,
    MaskResult,
)
from segany.evaluation.metrics import click_from_error, interior_point, iou

__all__ = [
    "NOC_THRESHOLDS",
    "EvalConfig",
    "EvalSummary",
    "Evaluator",
    "MaskResult",
    "click_from_error",
    "interior_point",
    "iou",
]
