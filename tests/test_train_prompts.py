"""Prompt simulation and losses of SAM's training recipe (paper App. A), on small hand-made
masks."""

from __future__ import annotations

import math

import pytest
import torch

from segany.errors import PromptError
from segany.train.losses import (
    dice_loss,
    iou_of,
    iou_rank_loss,
    mask_loss,
    sam_loss,
    sigmoid_focal_loss,
)
from segany.train.prompts import (
    PromptBatch,
    error_region_point,
    error_region_points,
    first_prompt,
    first_prompts,
    iterative_schedule,
    masks_to_boxes,
    noisy_box,
    noisy_boxes,
    sample_point_in_mask,
    sample_points_in_masks,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_masks(b: int, h: int, w: int, seed: int = 0, p: float = 0.3) -> torch.Tensor:
    return torch.rand(b, h, w, generator=gen(seed)) < p


def values_at(masks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """masks (B, H, W) at points (B, 2) xy -> (B,)."""
    rows = torch.arange(len(points))
    return masks[rows, points[:, 1].long(), points[:, 0].long()]


# ----------------------------------------------------------------------------- points


def test_points_lie_in_their_masks():
    masks = random_masks(200, 17, 23)
    masks[5] = False
    points, valid = sample_points_in_masks(masks, gen(1))
    assert points.shape == (200, 2) and points.dtype == torch.float32
    assert valid.tolist() == [i != 5 for i in range(200)]
    assert values_at(masks, points)[valid].all()
    assert points[5].tolist() == [0.0, 0.0]
    assert (points[:, 0] < 23).all() and (points[:, 1] < 17).all()


def test_points_are_uniform_over_the_mask():
    mask = torch.zeros(8, 9, dtype=torch.bool)
    cells = [(0, 0), (3, 4), (7, 8), (7, 0)]  # (y, x), spread over the image
    for y, x in cells:
        mask[y, x] = True
    n = 4000
    points, _ = sample_points_in_masks(mask.expand(n, 8, 9), gen(2))
    for y, x in cells:
        hits = ((points[:, 0] == x) & (points[:, 1] == y)).sum().item()
        assert abs(hits - n / 4) < 5 * math.sqrt(n * 0.25 * 0.75)


def test_single_point_and_empty_mask():
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[2, 3] = True
    assert sample_point_in_mask(mask, gen()).tolist() == [3.0, 2.0]
    with pytest.raises(PromptError, match="empty"):
        sample_point_in_mask(torch.zeros(5, 6, dtype=torch.bool))
    with pytest.raises(PromptError, match="bool"):
        sample_points_in_masks(torch.zeros(2, 5, 6))


# ----------------------------------------------------------------------------- boxes


def test_tight_boxes():
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 9, 11] = True
    boxes, valid = masks_to_boxes(masks)
    assert boxes.tolist() == [[3, 2, 8, 4], [11, 9, 11, 9], [0, 0, 0, 0]]
    assert valid.tolist() == [True, True, False]


def test_box_noise_is_ten_percent_of_the_side_and_at_most_20_px():
    n = 4000
    mask = torch.zeros(300, 400, dtype=torch.bool)
    mask[100:161, 100:201] = True  # box sides: 100 px wide, 60 px high
    boxes = noisy_boxes(mask.expand(n, 300, 400), gen(3))
    delta = boxes - torch.tensor([100.0, 100.0, 200.0, 160.0])
    std = delta.std(dim=0)
    for k, side in enumerate([100, 60, 100, 60]):
        assert abs(std[k].item() - 0.1 * side) < 0.08 * 0.1 * side
    assert delta.mean(dim=0).abs().max() < 0.5
    assert delta.abs().max() <= 20.0

    # a 380-px side has std 38, so the 20-px clip binds, often
    mask = torch.zeros(300, 500, dtype=torch.bool)
    mask[100:121, 60:441] = True
    delta = noisy_boxes(mask.expand(n, 300, 500), gen(4))[:, 0] - 60.0
    assert delta.abs().max() <= 20.0
    assert 0.5 < (delta.abs() > 19.99).float().mean() < 0.7  # P(|N(0, 38)| > 20) = 0.60


def test_noisy_box_stays_in_the_image_and_well_formed():
    mask = torch.zeros(50, 60, dtype=torch.bool)
    mask[0:50, 55:60] = True  # touching three borders
    boxes = noisy_boxes(mask.expand(500, 50, 60), gen(5))
    assert (boxes >= 0).all() and (boxes[:, 0::2] <= 59).all() and (boxes[:, 1::2] <= 49).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    single = noisy_box(mask, gen(5))
    assert single.shape == (4,)
    with pytest.raises(PromptError, match="empty"):
        noisy_box(torch.zeros(5, 5, dtype=torch.bool))


# ----------------------------------------------------------------------------- first prompt


def test_first_prompts_points_boxes_and_their_mix():
    masks = random_masks(300, 20, 30, seed=6)
    only_points = first_prompts(masks, gen(7), box_prob=0.0)
    assert only_points.points.shape == (300, 1, 2) and only_points.labels.shape == (300, 1)
    assert not only_points.has_box.any() and (only_points.labels == 1).all()
    assert values_at(masks, only_points.points[:, 0]).all()
    points, boxes = only_points.encoder_inputs()
    assert boxes is None and points[0].shape == (300, 1, 2)

    only_boxes = first_prompts(masks, gen(7), box_prob=1.0)
    assert only_boxes.has_box.all() and (only_boxes.labels == -1).all()
    points, boxes = only_boxes.encoder_inputs()
    assert points is None and boxes.shape == (300, 4)  # a box alone, as at inference

    mixed = first_prompts(masks, gen(8))
    assert 0.4 < mixed.has_box.float().mean() < 0.6
    with pytest.raises(PromptError, match="split"):
        mixed.encoder_inputs()
    with_box = mixed.take(mixed.has_box)
    assert with_box.has_box.all() and with_box.encoder_inputs()[0] is None

    one = first_prompt(masks[0], gen(9))
    assert isinstance(one, PromptBatch) and len(one) == 1
    masks[3] = False
    with pytest.raises(PromptError, match=r"\[3\] are empty"):
        first_prompts(masks, gen())


# ----------------------------------------------------------------------------- error points


def test_error_points_fall_in_the_error_region_with_matching_labels():
    gt = random_masks(500, 16, 16, seed=10, p=0.5)
    pred = random_masks(500, 16, 16, seed=11, p=0.5)
    points, labels = error_region_points(pred, gt, gen(12))
    false_negative, false_positive = gt & ~pred, pred & ~gt
    assert (labels >= 0).all()  # random masks always disagree somewhere
    assert values_at(false_negative, points)[labels == 1].all()
    assert values_at(false_positive, points)[labels == 0].all()
    assert 0.3 < labels.float().mean() < 0.7


def test_error_points_by_kind_of_error():
    gt = torch.zeros(3, 12, 12, dtype=torch.bool)
    gt[:, 2:10, 2:10] = True
    under = gt.clone()
    under[0, 2:10, 2:6] = False  # only false negatives: a positive point on the missed part
    over = gt.clone()
    over[1, 0:2, :] = True  # only false positives: a negative point
    pred = torch.stack([under[0], over[1], gt[2]])  # item 2 exact: no point
    points, labels = error_region_points(pred, gt, gen(13))
    assert labels.tolist() == [1, 0, -1]
    x, y = points[0].tolist()
    assert 2 <= y < 10 and 2 <= x < 6
    assert points[1, 1] < 2

    assert error_region_point(gt[2], gt[2], gen()) is None
    point, label = error_region_point(pred[0], gt[0], gen(14))
    assert label == 1 and point.shape == (2,)
    with pytest.raises(PromptError, match="differ"):
        error_region_points(pred, gt[:, :5])


def test_error_points_are_uniform_over_the_error_region():
    gt = torch.zeros(10, 10, dtype=torch.bool)
    gt[0, 0:3] = True  # three false negatives
    pred = torch.zeros(10, 10, dtype=torch.bool)
    pred[9, 9] = True  # one false positive
    n = 4000
    _, labels = error_region_points(pred.expand(n, 10, 10), gt.expand(n, 10, 10), gen(15))
    positive_share = labels.float().mean().item()
    assert abs(positive_share - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)


def test_adding_points_to_prompts():
    masks = random_masks(4, 8, 8, seed=16)
    prompts = first_prompts(masks, gen(17), box_prob=0.0)
    more = prompts.add_points(torch.ones(4, 2), torch.tensor([1, 0, -1, 1]))
    assert more.points.shape == (4, 2, 2) and more.labels[:, 1].tolist() == [1, 0, -1, 1]
    assert more.labels.dtype == torch.int64


# ----------------------------------------------------------------------------- schedule


def test_iterative_schedule_is_the_papers_eleven_steps():
    positions = set()
    for seed in range(30):
        steps = iterative_schedule(generator=gen(seed))
        kinds = [s.kind for s in steps]
        assert len(steps) == 11 and [s.index for s in steps] == list(range(11))
        assert kinds[0] == "initial" and kinds[-1] == "mask_only"
        assert kinds.count("point") == 8 and kinds.count("mask_only") == 2
        assert [s.multimask for s in steps] == [True] + [False] * 10
        assert not steps[0].uses_mask_input and all(s.uses_mask_input for s in steps[1:])
        positions.add(kinds.index("mask_only"))
    assert len(positions) >= 4  # the inserted mask-only step moves around
    assert [s.kind for s in iterative_schedule(3, 0)] == ["initial", "point", "point", "point"]
    assert len(iterative_schedule(16, 3, gen())) == 20


# ----------------------------------------------------------------------------- losses

# 2 x 2 hand example: logits [[0, ln 3], [-ln 3, 0]] -> p = [[1/2, 3/4], [1/4, 1/2]],
# targets [[1, 1], [0, 0]].
LOGITS = torch.tensor([[0.0, math.log(3)], [-math.log(3), 0.0]])
TARGETS = torch.tensor([[1.0, 1.0], [0.0, 0.0]])


def test_focal_loss_by_hand():
    # per pixel alpha_t (1 - p_t)^2 (-ln p_t): p_t = 1/2, 3/4, 3/4, 1/2 and
    # alpha_t = 1/4, 1/4, 3/4, 3/4:
    #   ln2/16, ln(4/3)/64, 3 ln(4/3)/64, 3 ln2/16 -> mean ln2/16 + ln(4/3)/64
    expected = math.log(2) / 16 + math.log(4 / 3) / 64
    assert sigmoid_focal_loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-6)
    # gamma = 0 and no alpha: plain binary cross-entropy, (2 ln2 + 2 ln(4/3)) / 4
    bce = (math.log(2) + math.log(4 / 3)) / 2
    assert sigmoid_focal_loss(LOGITS, TARGETS, alpha=-1, gamma=0).item() == pytest.approx(bce)
    assert sigmoid_focal_loss(LOGITS, TARGETS.bool()).item() == pytest.approx(expected, rel=1e-6)


def test_dice_loss_by_hand():
    # sum(p t) = 1/2 + 3/4, sum(p) = 2, sum(t) = 2: 1 - (2.5 + 1) / (4 + 1) = 0.3
    assert dice_loss(LOGITS, TARGETS).item() == pytest.approx(0.3, rel=1e-6)
    assert dice_loss(LOGITS, TARGETS, smooth=0.0).item() == pytest.approx(1 - 2.5 / 4, rel=1e-6)
    total = 20 * (math.log(2) / 16 + math.log(4 / 3) / 64) + 0.3
    assert mask_loss(LOGITS, TARGETS).item() == pytest.approx(total, rel=1e-6)


def test_losses_are_per_mask():
    logits = torch.stack([LOGITS, -LOGITS, 10 * torch.ones(2, 2)])[None]  # (1, 3, 2, 2)
    focal = sigmoid_focal_loss(logits, TARGETS)
    assert focal.shape == (1, 3)
    assert focal[0, 0].item() == pytest.approx(sigmoid_focal_loss(LOGITS, TARGETS).item())
    assert dice_loss(logits, TARGETS).shape == (1, 3)
    with pytest.raises(ValueError, match="differ"):
        dice_loss(logits, torch.ones(3, 3))


def test_iou_of_thresholded_prediction():
    # prediction {p > 1/2} = {(0, 1)}; target {(0, 0), (0, 1)}: IoU 1/2
    assert iou_of(LOGITS, TARGETS).item() == pytest.approx(0.5)
    empty = torch.zeros(2, 2)
    assert iou_of(-torch.ones(2, 2), empty).item() == 1.0  # nothing predicted, nothing there
    assert iou_of(torch.ones(2, 2), empty).item() == 0.0
    assert iou_of(torch.ones(2, 2), TARGETS.bool()).item() == pytest.approx(0.5)


def test_sam_loss_trains_the_best_of_k_masks():
    target = torch.zeros(2, 8, 8)
    target[:, 2:6, 2:6] = 1
    good = 8 * (2 * target - 1)  # confident and right
    wrong = -good
    blank = torch.full((2, 8, 8), -8.0)
    # item 0: the good mask is second; item 1: third
    logits = torch.stack(
        [torch.stack([wrong[0], good[0], blank[0]]), torch.stack([blank[1], wrong[1], good[1]])]
    ).requires_grad_()
    iou_pred = torch.tensor([[0.2, 0.9, 0.1], [0.5, 0.5, 0.5]], requires_grad=True)
    out = sam_loss(logits, iou_pred, target, multimask=True)
    assert out["best"].tolist() == [1, 2]
    expected_mask = mask_loss(good, target).mean()
    actual = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(out["iou"], actual)
    expected_mse = ((iou_pred - actual) ** 2).mean()
    torch.testing.assert_close(out["iou_mse"], expected_mse)
    torch.testing.assert_close(out["total"], expected_mask + expected_mse)
    torch.testing.assert_close(out["focal"], sigmoid_focal_loss(good, target).mean())
    torch.testing.assert_close(out["dice"], dice_loss(good, target).mean())

    out["total"].backward()
    grad = logits.grad.abs().flatten(2).sum(-1)  # (B, K)
    assert grad[0, 1] > 0 and grad[1, 2] > 0
    assert grad[0, 0] == 0 and grad[0, 2] == 0 and grad[1, 0] == 0 and grad[1, 1] == 0
    assert (iou_pred.grad != 0).all()  # every predicted IoU is trained by default

    chosen_only = sam_loss(logits, iou_pred, target, multimask=True, iou_on_all=False)
    torch.testing.assert_close(chosen_only["iou_mse"], ((iou_pred[[0, 1], [1, 2]] - 1) ** 2).mean())

    weighted = sam_loss(logits, iou_pred, target, multimask=True, iou_weight=5.0)
    torch.testing.assert_close(weighted["iou_mse"], expected_mse)  # reported unweighted
    torch.testing.assert_close(weighted["total"], expected_mask + 5.0 * expected_mse)
    masks_only = sam_loss(logits, iou_pred.detach().requires_grad_(), target, True, iou_weight=0)
    torch.testing.assert_close(masks_only["total"], expected_mask)


def test_iou_rank_loss_trains_the_choice():
    """The ranking term is 0 when predicted and actual IoUs rank alike with the same margins,
    grows when the head ranks a worse mask first, pushes the best mask's prediction up and the
    others down, is 0 for a single mask, and enters "total" only with its weight."""
    actual = torch.tensor([[0.9, 0.5, 0.2], [0.3, 0.3, 0.3]])
    assert torch.allclose(iou_rank_loss(actual + 0.05, actual), torch.zeros(2), atol=1e-6)
    wrong = torch.tensor([[0.2, 0.5, 0.9], [0.9, 0.1, 0.1]], requires_grad=True)
    loss = iou_rank_loss(wrong, actual)
    assert (loss > 0.5).all()
    loss.sum().backward()
    assert wrong.grad[0, 0] < 0 < wrong.grad[0, 2]  # descent raises mask 0, lowers mask 2
    assert wrong.grad[1, 0] > 0  # all three equal: the over-ranked one comes down
    assert iou_rank_loss(torch.rand(4, 1), torch.rand(4, 1)).abs().max() < 1e-6

    target = torch.zeros(2, 4, 4, dtype=torch.bool)
    target[:, :2] = True
    logits = torch.randn(2, 3, 4, 4)
    iou_pred = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.2, 0.4]])
    plain = sam_loss(logits, iou_pred, target, multimask=True)
    ranked = sam_loss(logits, iou_pred, target, multimask=True, iou_rank_weight=2.0)
    expected = iou_rank_loss(iou_pred, plain["iou"]).mean()
    torch.testing.assert_close(plain["iou_rank"], expected)  # reported, unweighted
    torch.testing.assert_close(plain["total"], ranked["total"] - 2.0 * expected)


def test_sam_loss_single_mask():
    target = torch.zeros(1, 4, 4, dtype=torch.bool)
    target[0, :2] = True
    logits = torch.zeros(1, 1, 4, 4)
    out = sam_loss(logits, torch.zeros(1, 1), target, multimask=False)
    assert out["best"].tolist() == [0]
    torch.testing.assert_close(out["total"], mask_loss(logits[0, 0], target[0]) + 0.0)
    with pytest.raises(ValueError, match="K=3"):
        sam_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3), target, multimask=False)
