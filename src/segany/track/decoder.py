"""Prompts on the low-resolution grid through an image predictor's decoder, several at once.

The tracker thinks in low-resolution cells (the decoder's own output grid, see
`segany.track.geometry`); this module turns its prompts into the model-input frame that
`SamPredictor.predict_low_res_torch` takes and batches those of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segany.predictor import SamPredictor
from segany.track.geometry import Grid


@dataclass
class LowPrompt:
    """One decoder prompt, on the low-resolution grid.

    points: (N, 2) float64 continuous xy cells, labels (N,) 1 / 0 (N may be 0);
    box: (4,) x0, y0, x1, y1 cells or None; mask: (lh, lw) float32 logits or None.
    """

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None
    mask: np.ndarray | None = None


def decode(
    predictor: SamPredictor, grid: Grid, prompts: list[LowPrompt], multimask: bool | str
) -> tuple[np.ndarray, np.ndarray]:
    """Decode `prompts` on the predictor's current image -> logits (B, C, lh, lw) float32 and
    predicted IoUs (B, C) float32, in the order given. Prompts with the same kind (box or
    not, mask or not) go through the decoder as one batch; point lists of unequal length are
    padded with ignored points (label -1). multimask: `predict`'s multimask_output."""
    logits: list[np.ndarray | None] = [None] * len(prompts)
    ious: list[np.ndarray | None] = [None] * len(prompts)
    groups: dict[tuple[bool, bool], list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault((prompt.box is not None, prompt.mask is not None), []).append(i)
    device = predictor.device
    for (has_box, has_mask), members in groups.items():
        batch = [prompts[i] for i in members]
        coords = labels = boxes = masks = None
        longest = max(len(p.points) for p in batch)
        if longest:
            coords = np.zeros((len(batch), longest, 2))
            labels = -np.ones((len(batch), longest), dtype=np.int64)
            for b, p in enumerate(batch):
                coords[b, : len(p.points)] = grid.low_to_input(p.points)
                labels[b, : len(p.points)] = p.labels
            coords = torch.as_tensor(coords, dtype=torch.float32, device=device)
            labels = torch.as_tensor(labels, dtype=torch.int32, device=device)
        if has_box:
            corners = np.stack([grid.low_to_input(p.box.reshape(2, 2)).ravel() for p in batch])
            boxes = torch.as_tensor(corners, dtype=torch.float32, device=device)  # (B, 4)
        if has_mask:
            stacked = np.stack([p.mask for p in batch])[:, None]  # (B, 1, lh, lw)
            masks = torch.as_tensor(stacked, dtype=torch.float32, device=device)
        low, iou = predictor.predict_low_res_torch(coords, labels, boxes, masks, multimask)
        low_np, iou_np = low.cpu().numpy(), iou.cpu().numpy()
        for b, i in enumerate(members):
            logits[i], ious[i] = low_np[b], iou_np[b]
    return np.stack(logits), np.stack(ious)


def click_prompt(points: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) frame rows (x, y, label) -> ((N, 2) low-resolution xy, (N,) labels)."""
    return grid.frame_to_low(points[:, :2]), points[:, 2].astype(np.int64)
