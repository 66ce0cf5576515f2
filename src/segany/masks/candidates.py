"""`MaskCandidates`: the masks automatic generation keeps, as RLE plus per-mask tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class MaskCandidates:
    """N candidate masks, all in the original image frame.

    rles: N uncompressed COCO RLEs; boxes (N, 4) int64 xyxy inclusive; iou and stability (N,)
    float32; points (N, 2) float64 xy of the prompt; crop_boxes (N, 4) int64 xyxy.
    """

    rles: list[dict] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 4), dtype=torch.int64))
    iou: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    stability: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    points: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 2), dtype=torch.float64))
    crop_boxes: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 4), dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.rles)

    def filter(self, keep: torch.Tensor) -> MaskCandidates:
        """The candidates selected by a bool mask or an index tensor, in that order."""
        index = keep.nonzero().flatten() if keep.dtype == torch.bool else keep
        index_list = index.tolist()
        return MaskCandidates(
            rles=[self.rles[i] for i in index_list],
            boxes=self.boxes[index],
            iou=self.iou[index],
            stability=self.stability[index],
            points=self.points[index],
            crop_boxes=self.crop_boxes[index],
        )

    @staticmethod
    def cat(parts: list[MaskCandidates]) -> MaskCandidates:
        if not parts:
            return MaskCandidates()
        return MaskCandidates(
            rles=[rle for part in parts for rle in part.rles],
            boxes=torch.cat([p.boxes for p in parts]),
            iou=torch.cat([p.iou for p in parts]),
            stability=torch.cat([p.stability for p in parts]),
            points=torch.cat([p.points for p in parts]),
            crop_boxes=torch.cat([p.crop_boxes for p in parts]),
        )
