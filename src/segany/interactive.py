"""Which of the model's masks answers an interactive edit: the rule the annotation app follows,
and the one `segany eval --clicks consistent` measures.

SAM's protocol answers every prompt after the first click with the decoder's single-mask output,
fed the earlier answer's low-resolution logits. A small model sometimes returns a single mask
that contradicts a click the person made (a foreground click outside it, a background click
inside it), and may keep doing so click after click while one of its other three outputs
honours them all. The rule here (`predict_edit`):

- a first prompt (no earlier answer) of at most one point, with or without a box: the 3
  multimask outputs, highest predicted IoU first, as SAM answers one click. (SAM's authors
  answer a lone box with the single-mask output; segany-tiny-v2's is weaker there: boxes
  around the 211 objects of 20 validation scenes get 0.761 mIoU from it against 0.852 from the
  pick of the three, photo scenes 0.732 against 0.816);
- any other prompt (two or more points, or an earlier answer's logits): the 4 outputs of one
  decoder pass, ranked by the number of clicks they contradict, then the single-mask output
  before the multimask ones, then by predicted IoU.

When the single-mask output honours every click it is the answer, as in SAM's protocol; the rule
only steps in where that answer is visibly wrong. Coordinates are `SamPredictor`'s: xy pixels of
the original image, (i, j) naming pixel (i, j) (the prompt encoder adds 0.5 to reach its
centre), so a click at (x, y) falls on pixel (round(x), round(y)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from segany.errors import PromptError
from segany.validation import check_points

if TYPE_CHECKING:
    from segany.predictor import Prediction, SamPredictor

CLICK_RULES = ("sam", "consistent")  # the NoC protocols `segany eval --clicks` offers


def contradicted_clicks(
    masks: np.ndarray, point_coords: np.ndarray, point_labels: np.ndarray
) -> np.ndarray:
    """(C,) int: for each (C, H, W) bool mask, how many of the (N, 2) xy clicks it contradicts:
    a foreground click (label 1) on a pixel outside it, a background click (label 0) on a pixel
    inside it. Other labels (-1, padding; box corners) and clicks off the image count nothing."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise PromptError(f"masks must be (C, H, W), got shape {masks.shape}")
    coords = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(point_labels).reshape(-1)
    if len(coords) != len(labels):
        raise PromptError(f"{len(coords)} points but {len(labels)} labels")
    height, width = masks.shape[1:]
    columns, rows = np.floor(coords[:, 0] + 0.5), np.floor(coords[:, 1] + 0.5)  # halves up
    counted = np.isin(labels, (0, 1)) & (columns >= 0) & (rows >= 0)
    counted &= (columns < width) & (rows < height)
    columns, rows = columns[counted].astype(np.intp), rows[counted].astype(np.intp)
    inside = masks[:, rows, columns]  # (C, K)
    wanted = labels[counted] == 1  # (K,)
    return np.count_nonzero(inside != wanted[None, :], axis=1)


def rank_candidates(
    masks: np.ndarray,
    iou_predictions: np.ndarray,
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
) -> np.ndarray:
    """The order (C,) in which to offer the 4 outputs of one decoder pass ((C, H, W) masks, the
    single-mask output first, and their (C,) predicted IoUs): fewest clicks contradicted, then
    the single-mask output, then the highest predicted IoU."""
    if point_coords is None or point_labels is None:
        contradicted = np.zeros(len(masks), dtype=np.int64)
    else:
        contradicted = contradicted_clicks(masks, point_coords, point_labels)
    not_single = np.arange(len(masks)) != 0
    # np.lexsort sorts by its last key first.
    return np.lexsort((-np.asarray(iou_predictions, dtype=np.float64), not_single, contradicted))


def is_first_prompt(point_coords: np.ndarray | None, mask_input: np.ndarray | None) -> bool:
    """No earlier answer and at most one point: answered with the 3 multimask outputs."""
    points = 0 if point_coords is None else len(np.asarray(point_coords).reshape(-1, 2))
    return mask_input is None and points <= 1


def predict_edit(
    predictor: SamPredictor,
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    mask_input: np.ndarray | None = None,
) -> Prediction:
    """The candidate masks for the prompts of an interactive edit, best first (see the module
    docstring): (C, H, W) bool masks, (C,) predicted IoUs, (C, h, w) low-resolution logits, C = 3
    for a first prompt, else 4. Arguments as `SamPredictor.predict` (one prompt: points
    (N, 2), a (4,) box, a (1, h, w) mask_input); a batch of boxes raises `PromptError`."""
    if box is not None and np.asarray(box).ndim != 1:
        raise PromptError("an interactive edit takes one box, (4,) xyxy")
    coords, labels = check_points(point_coords, point_labels)
    if coords is not None and coords.ndim != 2:
        raise PromptError("an interactive edit takes one set of points, (N, 2)")
    if is_first_prompt(coords, mask_input):
        masks, scores, low_res = predictor.predict(coords, labels, box, None, True)
        order = np.argsort(-scores, kind="stable")
    else:
        masks, scores, low_res = predictor.predict(coords, labels, box, mask_input, "all")
        order = rank_candidates(masks, scores, coords, labels)
    return masks[order], scores[order], low_res[order]
