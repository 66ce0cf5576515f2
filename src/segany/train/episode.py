"""One image's interactive episodes: SAM's simulated clicks (paper App. A) on M masks at once.

Follows the contract in `segany.train.prompts`: a first point or noisy box with 3 output
masks (loss on the best), then error-region points with the carried low-resolution logits as
mask input (1 output mask), and mask-only steps. The image embedding is computed once by the
caller and shared by every mask and every step; only the cheap prompt encoder and decoder run
per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segany.modeling.sam import Sam
from segany.train.batches import low_res_targets
from segany.train.losses import sam_loss
from segany.train.prompts import PromptBatch, error_region_points, first_prompts, iterative_schedule

LOSS_PARTS = ("total", "focal", "dice", "iou_mse")


def decode(
    model: Sam,
    embedding: torch.Tensor,
    prompts: PromptBatch,
    mask_input: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode B prompts on one image embedding (1, C, h, w).

    Items with a box must come before items without (they are decoded in two calls, as the
    prompt encoder puts a box on all items of a call or on none).
    Returns logits (B, K, 4h, 4w) and IoU predictions (B, K), K = 3 if multimask else 1.
    """
    n_box = int(prompts.has_box.sum())
    groups = [g for g in (slice(0, n_box), slice(n_box, len(prompts))) if g.stop > g.start]
    pe = model.prompt_encoder.get_dense_pe()
    logits, ious = [], []
    for group in groups:
        points, boxes = prompts.take(group).encoder_inputs()
        masks = None if mask_input is None else mask_input[group]
        sparse, dense = model.prompt_encoder(points, boxes, masks)
        low_res, iou = model.mask_decoder.predict_masks(embedding, pe, sparse, dense)
        outputs = slice(1, None) if multimask else slice(0, 1)
        logits.append(low_res[:, outputs])
        ious.append(iou[:, outputs])
    return torch.cat(logits), torch.cat(ious)


def episode_loss(
    model: Sam,
    embedding: torch.Tensor,
    masks: torch.Tensor,
    iterations: tuple[int, int],
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Mean loss over the steps of the interactive episodes of `masks` on one image.

    Args:
        embedding: (1, C, h, w) the image's embedding.
        masks: (M, S, S) bool ground truths in the input frame, none empty.
        iterations: (point steps, mask-only steps), e.g. (8, 2) for the paper's 11 steps.
        generator: the source of every random choice (on the masks' device).
    Returns:
        "total" (with gradient), "focal", "dice", "iou_mse" scalars, averaged over the steps.
    """
    # The schedule draws on the CPU; seed a CPU generator from the item's own.
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    schedule = iterative_schedule(*iterations, torch.Generator().manual_seed(seed))
    prompts = first_prompts(masks, generator)
    # Boxes first, so the two decoder calls of every step take contiguous slices.
    order = torch.argsort((~prompts.has_box).to(torch.int8), stable=True)
    prompts, masks = prompts.take(order), masks[order]
    low_h, low_w = model.prompt_encoder.mask_input_size
    targets = low_res_targets(masks, (low_h, low_w))  # (M, 4h, 4w)
    size = masks.shape[-2:]

    totals = {part: torch.zeros((), device=masks.device) for part in LOSS_PARTS}
    carried: torch.Tensor | None = None  # (M, 1, 4h, 4w) logits, no gradient
    for step in schedule:
        if step.new_point:
            assert carried is not None
            upsampled = F.interpolate(carried, size=size, mode="bilinear", align_corners=False)
            points, labels = error_region_points(upsampled[:, 0] > 0, masks, generator)
            prompts = prompts.add_points(points, labels)
        logits, iou_pred = decode(model, embedding, prompts, carried, step.multimask)
        losses = sam_loss(logits.float(), iou_pred.float(), targets, multimask=step.multimask)
        for part in LOSS_PARTS:
            totals[part] = totals[part] + losses[part]
        if step.multimask:  # carry the mask of highest predicted IoU, as at inference
            chosen = iou_pred.detach().argmax(dim=1)
            logits = logits[torch.arange(len(chosen), device=chosen.device), chosen][:, None]
        carried = logits.detach().float()
    return {part: value / len(schedule) for part, value in totals.items()}
