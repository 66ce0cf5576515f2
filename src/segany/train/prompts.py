"""Prompt simulation for training, following the SAM paper (Kirillov et al., 2023, App. A).

All coordinates are xy pixels in the model-input frame of the masks given (a pixel's index, as
`SamPredictor` takes them; the prompt encoder adds 0.5 to reach the pixel centre). Functions
take torch bool masks and an optional `torch.Generator` on the masks' device.

Contract for the trainer: one interactive episode per ground-truth mask
=====================================================================
`iterative_schedule()` lists 11 steps: one "initial", 8 "point" and 2 "mask_only" (one inserted
at random among the point steps, one always last). For a batch of masks `gt` (B, H, W):

1. initial: `prompts = first_prompts(gt, g)` (a point in the mask, or its noisy box, half the
   time each); no mask input; `multimask_output=True`. Loss: `sam_loss(..., multimask=True)`,
   i.e. on the best of the 3 masks. The mask carried on is the one with the highest
   *predicted* IoU (the paper; at inference nothing else is known).
2. point: `points, labels = error_region_points(prev_pred > 0, gt, g)` on the carried mask
   (upsampled to the input frame), `prompts = prompts.add_points(points, labels)`; the carried
   low-resolution logits (B, 1, 4h, 4w) for an (h, w) embedding, detached and *not*
   thresholded, are the mask input; `multimask_output=False`; loss with `multimask=False`.
3. mask_only: the same prompts, the carried logits as mask input, single mask, loss as 2.

Every step's loss counts (averaged over the steps); no gradient flows from one step into the
next. Items with no error left get a padding point (label -1), which SAM's prompt encoder ignores.
The prompt encoder puts a box on every item of a decoder call or on none, so call it separately
for `prompts.has_box` and `~prompts.has_box` (`PromptBatch.take`, then `encoder_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segany.errors import PromptError

STEP_KINDS = ("initial", "point", "mask_only")


def _check_masks(masks: torch.Tensor, name: str = "masks") -> None:
    if masks.dtype != torch.bool or masks.ndim != 3:
        raise PromptError(
            f"{name} must be a (B, H, W) bool tensor; got {masks.dtype} {tuple(masks.shape)}"
        )


def sample_points_in_masks(
    masks: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pixel drawn uniformly from each mask.

    Args:
        masks: (B, H, W) bool.
    Returns:
        points (B, 2) float32 xy pixels, and valid (B,) bool (False for an empty mask, whose
        point is (0, 0)).
    """
    _check_masks(masks)
    b, h, w = masks.shape
    flat = masks.reshape(b, h * w)
    # int32 runs ~2.5x faster than the default int64 here; HW < 2**31 always.
    running = flat.cumsum(dim=1, dtype=torch.int32)  # (B, HW): mask pixels up to each position
    counts = running[:, -1]
    u = torch.rand(b, generator=generator, device=masks.device, dtype=torch.float64)
    rank = torch.minimum((u * counts).to(torch.int32), (counts - 1).clamp(min=0))  # [0, count)
    # The pixel of rank r is the first position where the running count reaches r + 1.
    index = torch.searchsorted(running, (rank + 1)[:, None]).squeeze(1).clamp(max=h * w - 1)
    points = torch.stack([index % w, index // w], dim=1).to(torch.float32)
    valid = counts > 0
    return torch.where(valid[:, None], points, torch.zeros_like(points)), valid


def sample_point_in_mask(
    mask: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(H, W) bool -> (2,) float32 xy of a pixel drawn uniformly from the mask."""
    points, valid = sample_points_in_masks(mask[None], generator)
    if not valid[0]:
        raise PromptError("cannot sample a point from an empty mask")
    return points[0]


def masks_to_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) bool -> tight boxes (B, 4) float32 xyxy of the first and last pixel indices
    (x1, y1 inclusive, as SAM's boxes from masks), and valid (B,) bool (empty masks: zeros)."""
    _check_masks(masks)
    _, h, w = masks.shape
    valid = masks.flatten(1).any(dim=1)
    # argmax of uint8 finds the first set position (argmax is not defined on bool).
    cols = masks.any(dim=1).to(torch.uint8)  # (B, W)
    rows = masks.any(dim=2).to(torch.uint8)  # (B, H)
    x0 = cols.argmax(dim=1)
    x1 = w - 1 - cols.flip(1).argmax(dim=1)
    y0 = rows.argmax(dim=1)
    y1 = h - 1 - rows.flip(1).argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
    return torch.where(valid[:, None], boxes, torch.zeros_like(boxes)), valid


def noisy_boxes(
    masks: torch.Tensor,
    generator: torch.Generator | None = None,
    noise_std_frac: float = 0.1,
    max_noise: float = 20.0,
) -> torch.Tensor:
    """Each mask's tight box with every coordinate moved by Gaussian noise of std
    `noise_std_frac` x the box side along that axis, the move clipped to `max_noise` px, then
    the box clipped to the image: (B, H, W) bool -> (B, 4) float32 xyxy (x0 <= x1, y0 <= y1).
    Empty masks give zero boxes."""
    boxes, valid = masks_to_boxes(masks)
    _, h, w = masks.shape
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    std = noise_std_frac * torch.stack([width, height, width, height], dim=1)  # (B, 4)
    noise = torch.randn(boxes.shape, generator=generator, device=boxes.device) * std
    moved = boxes + noise.clamp(-max_noise, max_noise)
    x = moved[:, 0::2].clamp(0, w - 1)  # (B, 2)
    y = moved[:, 1::2].clamp(0, h - 1)
    # A thin box's noisy corners may cross; keep the box well formed.
    x, y = x.sort(dim=1).values, y.sort(dim=1).values
    out = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
    return torch.where(valid[:, None], out, torch.zeros_like(out))


def noisy_box(
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
    noise_std_frac: float = 0.1,
    max_noise: float = 20.0,
) -> torch.Tensor:
    """(H, W) bool -> (4,) float32 xyxy: `noisy_boxes` of one mask."""
    if not mask.any():
        raise PromptError("cannot make a box for an empty mask")
    return noisy_boxes(mask[None], generator, noise_std_frac, max_noise)[0]


@dataclass(frozen=True)
class PromptBatch:
    """The prompts of B interactive episodes.

    Attributes:
        points: (B, N, 2) float32 xy input-frame pixels.
        labels: (B, N) int64: 1 foreground, 0 background, -1 padding (not a point).
        boxes: (B, 4) float32 xyxy; meaningful only where `has_box`.
        has_box: (B,) bool.
    """

    points: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    has_box: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    @classmethod
    def concat(cls, batches: list[PromptBatch]) -> PromptBatch:
        """The items of `batches` in order (all with the same number of points N)."""
        return cls(
            points=torch.cat([b.points for b in batches]),
            labels=torch.cat([b.labels for b in batches]),
            boxes=torch.cat([b.boxes for b in batches]),
            has_box=torch.cat([b.has_box for b in batches]),
        )

    def add_points(self, points: torch.Tensor, labels: torch.Tensor) -> PromptBatch:
        """Append one point per item: points (B, 2), labels (B,) (-1 for none) -> N + 1."""
        return PromptBatch(
            points=torch.cat([self.points, points[:, None].to(self.points.dtype)], dim=1),
            labels=torch.cat([self.labels, labels[:, None].to(self.labels.dtype)], dim=1),
            boxes=self.boxes,
            has_box=self.has_box,
        )

    def take(self, index: torch.Tensor) -> PromptBatch:
        """The items at `index` (indices or a (B,) bool mask)."""
        return PromptBatch(
            self.points[index], self.labels[index], self.boxes[index], self.has_box[index]
        )

    def encoder_inputs(
        self,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
        """(points, labels) or None, and boxes or None, as the prompt encoder takes them.

        Point columns that are padding in every item are dropped (a box-only first step passes
        no points, as at inference). Raises `PromptError` if only some items have a box.
        """
        if len(self) and bool(self.has_box.any()) != bool(self.has_box.all()):
            raise PromptError("some items have a box and some not; split with take(has_box)")
        used = (self.labels != -1).any(dim=0)  # (N,)
        points = (self.points[:, used], self.labels[:, used]) if bool(used.any()) else None
        boxes = self.boxes if len(self) and bool(self.has_box.all()) else None
        return points, boxes


def first_prompts(
    masks: torch.Tensor, generator: torch.Generator | None = None, box_prob: float = 0.5
) -> PromptBatch:
    """The first prompt of each episode: with probability `box_prob` the mask's noisy box (and a
    padding point), otherwise a point drawn uniformly from the mask (label 1).

    masks: (B, H, W) bool, none empty (raises `PromptError`).
    """
    points, valid = sample_points_in_masks(masks, generator)
    if not bool(valid.all()):
        raise PromptError(f"masks {valid.logical_not().nonzero().flatten().tolist()} are empty")
    b = masks.shape[0]
    has_box = torch.rand(b, generator=generator, device=masks.device) < box_prob
    boxes = noisy_boxes(masks, generator)
    labels = torch.where(has_box, -1, 1).to(torch.int64)
    return PromptBatch(points[:, None], labels[:, None], boxes, has_box)


def first_prompt(
    mask: torch.Tensor, generator: torch.Generator | None = None, box_prob: float = 0.5
) -> PromptBatch:
    """`first_prompts` of one (H, W) mask: a PromptBatch of one item."""
    return first_prompts(mask[None], generator, box_prob)


def error_region_points(
    pred_masks: torch.Tensor, gt_masks: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A point drawn uniformly from each item's error region (false negatives and false
    positives), labelled 1 in a false negative (the object is missed there) and 0 in a false
    positive.

    Args:
        pred_masks, gt_masks: (B, H, W) bool (threshold logits at 0 first).
    Returns:
        points (B, 2) float32 xy and labels (B,) int64; label -1 (padding) where the prediction
        is already exact.
    """
    _check_masks(pred_masks, "pred_masks")
    _check_masks(gt_masks, "gt_masks")
    if pred_masks.shape != gt_masks.shape:
        raise PromptError(
            f"pred_masks {tuple(pred_masks.shape)} and gt_masks {tuple(gt_masks.shape)} differ"
        )
    false_negative = gt_masks & ~pred_masks
    points, valid = sample_points_in_masks(pred_masks ^ gt_masks, generator)
    xs, ys = points[:, 0].long(), points[:, 1].long()
    rows = torch.arange(len(points), device=points.device)
    labels = false_negative[rows, ys, xs].to(torch.int64)
    return points, torch.where(valid, labels, -1)


def error_region_point(
    pred_mask: torch.Tensor, gt_mask: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int] | None:
    """(H, W) bool prediction and ground truth -> ((2,) xy point, label 1 or 0), or None if the
    prediction is exact. See `error_region_points`."""
    points, labels = error_region_points(pred_mask[None], gt_mask[None], generator)
    label = int(labels[0])
    return None if label == -1 else (points[0], label)


@dataclass(frozen=True)
class Step:
    """One step of an interactive episode (see the module docstring).

    kind: "initial" (first prompt, 3 masks, no mask input), "point" (a new error-region point,
    previous logits as mask input, 1 mask) or "mask_only" (no new point, previous logits, 1 mask).
    """

    index: int
    kind: str

    @property
    def new_point(self) -> bool:
        return self.kind == "point"

    @property
    def multimask(self) -> bool:
        return self.kind == "initial"

    @property
    def uses_mask_input(self) -> bool:
        return self.kind != "initial"


def iterative_schedule(
    num_iterations: int = 8, extra_without_points: int = 2, generator: torch.Generator | None = None
) -> list[Step]:
    """The paper's episode: an initial step, `num_iterations` steps each adding an error-region
    point, and `extra_without_points` mask-only steps, the last of them at the end and the
    others at random places among the point steps: 1 + 8 + 2 = 11 steps by default."""
    if num_iterations < 0 or extra_without_points < 0:
        raise PromptError("num_iterations and extra_without_points must be >= 0")
    kinds = ["point"] * num_iterations
    for _ in range(max(extra_without_points - 1, 0)):
        slot = int(torch.randint(0, len(kinds) + 1, (1,), generator=generator))
        kinds.insert(slot, "mask_only")
    if extra_without_points:
        kinds.append("mask_only")
    return [Step(i, kind) for i, kind in enumerate(["initial", *kinds])]
