"""What the image model gives on a video without a tracker: the baselines the sequence
yardstick prints beside a tracker's scores (issue 26).

Every object starts as the tracker's does, with one click on its prompt frame (the same click,
`sequences.first_clicks`); its mask there is SAM's 1-click answer, the highest-scoring of the
three candidates. Then, on each later frame:

  - "held": the prompt frame's mask held still (what a tracker must beat to be worth running);
  - "previous box": the box around the mask predicted on the previous frame prompts the image
    model on this frame (the last non-empty box when the object was lost);
  - "ground-truth box": the box around the object's true visible mask prompts the image model
    on every frame, the prompt frame included, and an absent object gets an empty mask (the
    image model's ceiling: a perfect box tracker's score).

Each frame is encoded once for all objects and baselines. Scored like the tracker (`davis`):
every frame from the object's prompt frame on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segany.data.synthetic_video import SyntheticVideo
from segany.evaluation.davis import ObjectScorer, ObjectScores
from segany.evaluation.sequences import first_clicks

BASELINES = ("held", "previous box", "ground-truth box")


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(4,) float64 x0, y0, x1, y1 pixel-edge box around an (H, W) mask (pixel (x, y) spans
    x..x+1), or None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def _box_mask(predictor: Any, box: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The image model's single mask for `box` on the current image; empty for no box."""
    if box is None:
        return np.zeros(shape, dtype=bool)
    masks, _, _ = predictor.predict(box=box, multimask_output=False)
    return masks[0]


def image_baselines(
    predictor: Any,
    video: SyntheticVideo,
    name: str | None = None,
    tolerance: float | None = None,
) -> dict[str, list[ObjectScores]]:
    """The three baselines' scores on `video` (see the module docstring), keyed by the names
    in `BASELINES`. predictor: a `segany.SamPredictor` (any model); tolerance: F's matching
    distance in px (default DAVIS's)."""
    name = f"seed{video.seed}" if name is None else name
    shape = (video.height, video.width)
    clicks = first_clicks(video)
    scorers = {b: {k: ObjectScorer(name, k, tolerance) for k in video.objects} for b in BASELINES}
    held: dict[int, np.ndarray] = {}
    previous: dict[int, np.ndarray] = {}  # the last frame's "previous box" mask
    boxes: dict[int, np.ndarray] = {}  # its last non-empty box
    for t in range(min(p.frame for p in clicks.values()), len(video)):
        active = [k for k in video.objects if video.prompt_frames[k] <= t]
        if not active:
            continue
        predictor.set_image(video.frame(t))
        gt = video.mask(t)
        for k in active:
            truth = gt == k
            if t == video.prompt_frames[k]:
                points = clicks[k].points
                masks, ious, _ = predictor.predict(
                    point_coords=points[:, :2], point_labels=points[:, 2], multimask_output=True
                )
                held[k] = previous[k] = masks[int(np.argmax(ious))]
            else:
                box = mask_box(previous[k])
                boxes[k] = box if box is not None else boxes.get(k)
                previous[k] = _box_mask(predictor, boxes.get(k), shape)
            scorers["held"][k].add(t, held[k], truth)
            scorers["previous box"][k].add(t, previous[k], truth)
            oracle = _box_mask(predictor, mask_box(truth), shape)
            scorers["ground-truth box"][k].add(t, oracle, truth)
    return {b: [s.scores() for s in scorers[b].values()] for b in BASELINES}
