"""SAM's training losses (Kirillov et al., 2023, Sec. 3 and App. A).

The mask loss is 20 x focal + 1 x dice, per mask; with several output masks only the one of
lowest mask loss is trained (so the others stay free to cover other readings of an ambiguous
prompt); the IoU head is trained by the mean squared error between each mask's predicted IoU and
its actual IoU with the ground truth.

The IoU term is added with weight 1 (the paper's constant scaling factor of 1.0) unless
`iou_weight` says otherwise. An optional ranking term (`iou_rank_weight`, not in the paper)
trains the K predicted IoUs as a choice: the KL divergence from the softmax of the masks' actual
IoUs to the softmax of the predicted ones (ListNet; Cao et al., 2007), both at temperature
RANK_TEMPERATURE, so the mask the head ranks first is the one that is best; items whose masks
are about equally good carry almost no weight.

On which masks the IoU head is trained: the paper says "between the IoU prediction and the
predicted mask's IoU with the ground truth mask". At inference the head's job is to *rank* the K
candidates (the predictor returns the mask of highest predicted IoU), and only a prediction that
is trained can rank; so by default every one of the K predictions is regressed to its own mask's
IoU (`iou_on_all=True`). `iou_on_all=False` trains only the chosen mask's, the other reading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
DICE_WEIGHT = 1.0
# IoU differences of 0.1 between candidates become odds of e : 1 in the ranking term.
RANK_TEMPERATURE = 0.1


def _check(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.shape[-2:] != targets.shape[-2:]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in (H, W)"
        )


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Focal loss (Lin et al., 2017) of each mask, averaged over its pixels.

    Per pixel: -alpha_t (1 - p_t)^gamma log(p_t), p_t the predicted probability of the true
    class, alpha_t = alpha for foreground and 1 - alpha for background (alpha < 0: no weighting).

    Args:
        logits: (..., H, W) float.
        targets: (..., H, W) bool or float in {0, 1}, broadcastable to logits.
    Returns:
        (...) float, one loss per mask.
    """
    _check(logits, targets)
    targets = targets.to(logits.dtype)
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets.expand_as(logits), reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.flatten(-2).mean(dim=-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - Dice coefficient of sigmoid(logits) with the targets, per mask:
    1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth).

    logits (..., H, W), targets broadcastable to it -> (...).
    """
    _check(logits, targets)
    targets = targets.to(logits.dtype)
    prob = torch.sigmoid(logits).flatten(-2)
    t = targets.flatten(-2)
    numerator = 2 * (prob * t).sum(dim=-1) + smooth
    denominator = prob.sum(dim=-1) + t.sum(dim=-1) + smooth
    return 1 - numerator / denominator


def mask_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """20 x focal + 1 x dice per mask: (..., H, W) -> (...)."""
    return FOCAL_WEIGHT * sigmoid_focal_loss(logits, targets) + DICE_WEIGHT * dice_loss(
        logits, targets
    )


@torch.no_grad()
def iou_of(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Actual IoU of the thresholded prediction (logits > 0) with the targets, per mask:
    (..., H, W) -> (...) float32; 1 where both are empty. No gradient (a regression target)."""
    _check(pred_logits, targets)
    pred = (pred_logits > 0).flatten(-2)
    t = (targets > 0.5 if targets.is_floating_point() else targets.bool()).flatten(-2)
    intersection = (pred & t).sum(dim=-1)
    union = (pred | t).sum(dim=-1)
    iou = intersection.to(torch.float32) / union.clamp(min=1).to(torch.float32)
    return torch.where(union == 0, torch.ones_like(iou), iou)


def iou_rank_loss(iou_pred: torch.Tensor, actual_iou: torch.Tensor) -> torch.Tensor:
    """KL(softmax(actual / T) || softmax(predicted / T)) over the K candidates of each item,
    T = RANK_TEMPERATURE: (B, K), (B, K) -> (B,); 0 when the two rank alike with the same
    margins, and 0 for K = 1 (nothing to choose)."""
    target = torch.softmax(actual_iou.to(iou_pred.dtype) / RANK_TEMPERATURE, dim=1)
    log_predicted = torch.log_softmax(iou_pred / RANK_TEMPERATURE, dim=1)
    return F.kl_div(log_predicted, target, reduction="none").sum(dim=1)


def sam_loss(
    mask_logits: torch.Tensor,
    iou_pred: torch.Tensor,
    targets: torch.Tensor,
    multimask: bool,
    iou_on_all: bool = True,
    weights: torch.Tensor | None = None,
    iou_weight: float = 1.0,
    iou_rank_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """SAM's loss for a batch of predictions.

    Args:
        mask_logits: (B, K, H, W) predicted mask logits (K = 3 with multimask output, else 1).
        iou_pred: (B, K) predicted IoUs.
        targets: (B, H, W) ground-truth masks (bool or {0, 1} float) at the logits' resolution.
        multimask: pick the best of the K masks for the mask loss; if False, K must be 1.
        iou_on_all: regress all K predicted IoUs (default), else only the chosen mask's.
        weights: (B,) weight of each item in the batch's averages (default 1 / B each: means).
        iou_weight: "total" is the chosen masks' loss plus iou_weight x "iou_mse" (the
            paper's 1.0 by default).
        iou_rank_weight: plus iou_rank_weight x "iou_rank" (`iou_rank_loss`; default 0: off).
    Returns:
        dict of scalars "total", "focal", "dice", "iou_mse", "iou_rank" (weighted averages
        over the batch, focal unweighted by its 20), and "best" (B,) int64, the mask the loss
        was taken on, and "iou" (B, K), the masks' actual IoUs.
    """
    if mask_logits.ndim != 4 or iou_pred.shape != mask_logits.shape[:2]:
        raise ValueError(
            f"expected mask_logits (B, K, H, W) and iou_pred (B, K); got "
            f"{tuple(mask_logits.shape)} and {tuple(iou_pred.shape)}"
        )
    if not multimask and mask_logits.shape[1] != 1:
        raise ValueError(f"multimask=False takes one mask per item, got K={mask_logits.shape[1]}")
    targets = targets[:, None]  # (B, 1, H, W), broadcast over K
    focal = sigmoid_focal_loss(mask_logits, targets)  # (B, K)
    dice = dice_loss(mask_logits, targets)  # (B, K)
    per_mask = FOCAL_WEIGHT * focal + DICE_WEIGHT * dice
    best = per_mask.detach().argmin(dim=1)  # (B,)
    rows = torch.arange(len(best), device=best.device)
    actual_iou = iou_of(mask_logits, targets)  # (B, K)
    if weights is None:
        weights = torch.full((len(best),), 1.0 / max(len(best), 1), device=best.device)
    weights = weights.to(per_mask.dtype)
    squared = (iou_pred - actual_iou.to(iou_pred.dtype)).pow(2)  # (B, K)
    iou_mse = (squared.mean(dim=1) if iou_on_all else squared[rows, best]) @ weights
    iou_rank = iou_rank_loss(iou_pred, actual_iou) @ weights
    chosen = per_mask[rows, best] @ weights
    total = chosen + iou_weight * iou_mse
    if iou_rank_weight:  # left out at 0, so that runs without it are bit for bit the same
        total = total + iou_rank_weight * iou_rank
    return {
        "total": total,
        "focal": focal[rows, best] @ weights,
        "dice": dice[rows, best] @ weights,
        "iou_mse": iou_mse,
        "iou_rank": iou_rank,
        "best": best,
        "iou": actual_iou,
    }
