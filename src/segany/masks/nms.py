"""Box non-maximum suppression: torchvision's NMS kernel, without importing torchvision.

`import torchvision` imports its models, datasets and `torch._dynamo` (through
`torchvision.ops.roi_align`). That costs about 160 MB of resident memory and 1 s of start-up,
to get one kernel. This module loads only torchvision's compiled operator library, which
registers `torch.ops.torchvision.nms` for CPU and, in CUDA builds, for CUDA. It uses the package
only if that library cannot be found.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch

NmsKernel = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


@functools.cache
def _nms_kernel() -> NmsKernel:
    """torchvision's `nms(boxes, scores, iou_threshold) -> kept indices`, loaded once."""
    if not hasattr(torch.ops.torchvision, "nms"):  # not registered yet by torchvision itself
        spec = importlib.util.find_spec("torchvision")
        folders = list(spec.submodule_search_locations or []) if spec else []
        libraries = [p for folder in folders for p in sorted(Path(folder).glob("_C*.[sp][oy]*"))]
        for library in libraries:
            try:
                torch.ops.load_library(str(library))
                break
            except OSError:
                continue
    if hasattr(torch.ops.torchvision, "nms"):
        return torch.ops.torchvision.nms
    from torchvision.ops import nms  # the package's own path, if the library was not found

    return nms


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Indices of the boxes that NMS keeps within each group, by decreasing score.

    Args:
        boxes: (N, 4) float XYXY boxes in any one pixel frame.
        scores: (N,) float.
        groups: (N,) int; boxes in different groups never suppress each other.
        iou_threshold: a box overlapping a higher-scoring box of its group by IoU above this
            is dropped.
    Returns:
        (K,) int64 indices into the N boxes.

    Same result as `torchvision.ops.batched_nms`. Each group's boxes are shifted to their own
    stretch of the plane, so one NMS pass can never match boxes across groups.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    span = boxes.max() + 1
    shifted = boxes + (groups.to(boxes) * span)[:, None]
    return _nms_kernel()(shifted, scores, iou_threshold)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) XYXY boxes -> (N,) areas."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
