"""The interactive episodes of a micro-batch: SAM's simulated clicks (paper App. A) on every
drawn mask of every image at once.

Follows the contract in `segany.train.prompts`: a first point or noisy box with 3 output
masks (loss on the best), then error-region points with the carried low-resolution logits as
mask input (1 output mask), and mask-only steps. Each image's embedding is computed once by the
caller and shared by its masks' steps; only the cheap prompt encoder and decoder run per step,
and they run once per step for all images' masks together (a call per image made training
several times slower on a CPU: thousands of small kernels). Every random choice about image i's
masks comes from image i's own generator, so a micro-batch split over processes draws the same
prompts as one process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segany.modeling.sam import Sam
from segany.train.batches import low_res_targets
from segany.train.config import LossConfig
from segany.train.losses import sam_loss
from segany.train.prompts import PromptBatch, error_region_points, first_prompts, iterative_schedule

LOSS_PARTS = ("total", "focal", "dice", "iou_mse", "iou_rank")


def decode(
    model: Sam,
    embeddings: torch.Tensor,
    prompts: PromptBatch,
    mask_input: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode B prompts, item b on image embedding `embeddings[b]` ((B, C, h, w), or (1, C, h,
    w) shared by all).

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
        embedding = embeddings if len(embeddings) == 1 else embeddings[group]
        outputs = slice(1, None) if multimask else slice(0, 1)
        low_res, iou = model.mask_decoder.predict_masks(
            embedding, pe, sparse, dense, outputs=outputs
        )
        logits.append(low_res)
        ious.append(iou)
    return torch.cat(logits), torch.cat(ious)


def episode_loss(
    model: Sam,
    embeddings: torch.Tensor,
    masks: list[torch.Tensor],
    iterations: tuple[int, int],
    generators: list[torch.Generator],
    schedule_generator: torch.Generator,
    loss: LossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Mean loss over the steps of the interactive episodes of every mask of every image.

    Args:
        embeddings: (B, C, h, w) the images' embeddings.
        masks: B tensors (M_i, S, S) bool, image i's ground truths in the input frame, none
            empty.
        iterations: (point steps, mask-only steps), e.g. (8, 2) for the paper's 11 steps.
        generators: B generators (on the masks' device), image i's random choices.
        schedule_generator: (CPU) draws where the mask-only steps fall, the same for all items.
        loss: the weights of the IoU head's terms in "total" (see `sam_loss`; None: the
            defaults).
    Returns:
        "total" (with gradient), "focal", "dice", "iou_mse", "iou_rank" scalars: each image
        weighs 1 / B and its masks share that equally; averaged over the steps.
    """
    loss = loss or LossConfig()
    schedule = iterative_schedule(*iterations, schedule_generator)
    first = [first_prompts(gt, g) for gt, g in zip(masks, generators, strict=True)]
    owner = torch.cat([torch.full((len(gt),), i) for i, gt in enumerate(masks)])  # (M,)
    prompts = PromptBatch.concat(first)
    ground_truth = torch.cat(masks)  # (M, S, S)
    # Boxes first, so the two decoder calls of every step take contiguous slices.
    order = torch.argsort((~prompts.has_box).to(torch.int8), stable=True).to(owner.device)
    prompts, ground_truth, owner = prompts.take(order), ground_truth[order], owner[order]
    rows = [torch.nonzero(owner == i).flatten().to(ground_truth.device) for i in range(len(masks))]
    weights = torch.cat([torch.full((len(gt),), 1.0 / (len(gt) * len(masks))) for gt in masks])
    weights = weights[order].to(ground_truth.device)  # (M,)
    # Each mask's image embedding, by a one-hot matmul rather than indexing: the backward of
    # an index with repeats accumulates in a thread-dependent order, which would make a
    # resumed run drift from a straight one; a matmul's gradient is reproducible.
    select = F.one_hot(owner.to(embeddings.device), len(masks)).to(embeddings)  # (M, B)
    per_mask_embeddings = (select @ embeddings.flatten(1)).view(-1, *embeddings.shape[1:])
    low_h, low_w = model.prompt_encoder.mask_input_size
    targets = low_res_targets(ground_truth, (low_h, low_w))  # (M, 4h, 4w)
    size = ground_truth.shape[-2:]

    totals = {part: torch.zeros((), device=ground_truth.device) for part in LOSS_PARTS}
    carried: torch.Tensor | None = None  # (M, 1, 4h, 4w) logits, no gradient
    for step in schedule:
        if step.new_point:
            assert carried is not None
            upsampled = F.interpolate(carried, size=size, mode="bilinear", align_corners=False)
            predicted = upsampled[:, 0] > 0  # (M, S, S)
            points = torch.empty((len(owner), 2), device=ground_truth.device)
            labels = torch.empty(len(owner), dtype=torch.int64, device=ground_truth.device)
            for i, generator in enumerate(generators):
                mine = rows[i]
                points[mine], labels[mine] = error_region_points(
                    predicted[mine], ground_truth[mine], generator
                )
            prompts = prompts.add_points(points, labels)
        logits, iou_pred = decode(model, per_mask_embeddings, prompts, carried, step.multimask)
        losses = sam_loss(
            logits.float(),
            iou_pred.float(),
            targets,
            multimask=step.multimask,
            weights=weights,
            iou_weight=loss.iou_weight,
            iou_rank_weight=loss.iou_rank_weight,
        )
        for part in LOSS_PARTS:
            totals[part] = totals[part] + losses[part]
        if step.multimask:  # carry the mask of highest predicted IoU, as at inference
            chosen = iou_pred.detach().argmax(dim=1)
            logits = logits[torch.arange(len(chosen), device=chosen.device), chosen][:, None]
        carried = logits.detach().float()
    return {part: value / len(schedule) for part, value in totals.items()}
