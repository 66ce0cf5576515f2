"""Periodic validation during training: 1-point mIoU, the point being each mask's interior
pixel farthest from its border (`segany.evaluation.metrics.interior_point`, as `segany eval`),
the prediction the most confident of the 3 output masks. Computed in the model's input frame on
a batch of masks per image, so it is cheap enough to run often."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from segany.data.sample import Sample
from segany.evaluation.metrics import interior_point
from segany.modeling.sam import Sam
from segany.train.batches import prepare


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """(M, H, W) bool, none empty -> (M, 2) float32 xy of each mask's pixel farthest from
    the mask's border."""
    points = [interior_point(mask) for mask in masks.cpu().numpy()]
    return torch.tensor(points, dtype=torch.float32, device=masks.device)


@torch.no_grad()
def one_point_miou(
    model: Sam, samples: Sequence[Sample], max_images: int = 0, max_masks: int = 0
) -> float:
    """Mean IoU over the masks of the first `max_images` samples (all if 0), `max_masks` per
    image (all if 0), in the model's input frame, each from one interior point."""
    images = len(samples) if max_images <= 0 else min(max_images, len(samples))
    ious = []
    pe = model.prompt_encoder.get_dense_pe()
    for index in range(images):
        sample = samples[index]
        masks = len(sample.masks) if max_masks <= 0 else min(max_masks, len(sample.masks))
        item = prepare(sample, model, range(masks))
        embedding = model.image_encoder(item.image[None])
        points = interior_points(item.masks)[:, None]  # (M, 1, 2)
        labels = torch.ones(points.shape[:2], dtype=torch.int64, device=points.device)
        sparse, dense = model.prompt_encoder((points, labels), None, None)
        low_res, iou_pred = model.mask_decoder(embedding, pe, sparse, dense, True)
        best = low_res[torch.arange(len(low_res)), iou_pred.argmax(dim=1)]  # (M, 4h, 4w)
        size = item.masks.shape[-2:]
        pred = F.interpolate(best[:, None].float(), size=size, mode="bilinear")[:, 0] > 0
        h, w = item.input_size
        pred, gt = pred[:, :h, :w], item.masks[:, :h, :w]
        inter = (pred & gt).flatten(1).sum(1).float()
        union = (pred | gt).flatten(1).sum(1).float()
        ious.append((inter / union.clamp(min=1)).cpu())
    return float(torch.cat(ious).mean()) if ious else float("nan")
