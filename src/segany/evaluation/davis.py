"""The DAVIS protocol for video object segmentation (Perazzi et al., CVPR 2016; Pont-Tuset et
al., 2017): region similarity J and contour accuracy F per object and frame, and their
statistics over frames (mean, recall, decay) and over objects.

  - J: the IoU of the predicted and true masks; 1 when both are empty (`metrics.iou`).
  - F: the boundary F-measure of `boundary.boundary_fscore`, boundary pixels matching within
    `davis_tolerance(shape)` = ceil(0.008 x the image diagonal) px, DAVIS's threshold (7 px at
    640 x 480); 1 when neither mask has a boundary, 0 when only one has.
  - Per object, over its scored frames: mean; recall, the share of frames scoring over 0.5;
    decay, the mean over the first quarter of the frames minus that over the last quarter
    (how much the score fades as the video goes on).
  - Over a dataset: each statistic averaged over objects (every object of every sequence
    weighs the same, as DAVIS's tables do); J&F = (J mean + F mean) / 2.

Two departures from DAVIS's evaluation code, both because of how the yardstick prompts: DAVIS
drops each sequence's first frame (its mask is given) and last frame from the statistics, here
every frame from an object's prompt frame on is scored (the prompt is a click, not a mask);
and F does not count the image edge as a boundary (see `boundary`).

Masks are (H, W) bool (or 0/1) in the frame's pixel grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segany.errors import DataError
from segany.evaluation.boundary import boundary_fscore
from segany.evaluation.metrics import iou

DAVIS_BOUNDARY = 0.008  # F's matching distance, as a fraction of the image diagonal


def davis_tolerance(shape: tuple[int, ...]) -> float:
    """F's matching distance in px for (H, W, ...) frames: ceil(0.008 x the diagonal)."""
    return float(math.ceil(DAVIS_BOUNDARY * math.hypot(shape[0], shape[1])))


def _check(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise DataError(f"masks must be (H, W) of one shape, got {pred.shape} and {gt.shape}")


def region_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of an (H, W) predicted mask against an (H, W) true one: IoU, 1 when both are empty."""
    _check(pred, gt)
    return iou(pred, gt)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float | None = None) -> float:
    """F of an (H, W) predicted mask against an (H, W) true one, boundaries matching within
    `tolerance` px (default: DAVIS's, `davis_tolerance`)."""
    _check(pred, gt)
    return boundary_fscore(pred, gt, davis_tolerance(gt.shape) if tolerance is None else tolerance)


@dataclass(frozen=True)
class Statistics:
    """mean, recall (share over 0.5) and decay (first quarter's mean - last quarter's) of one
    object's per-frame scores."""

    mean: float
    recall: float
    decay: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Statistics:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            raise DataError("no frames scored: an object needs at least one")
        quarters = [q for q in np.array_split(values, 4) if q.size]
        return cls(
            mean=float(values.mean()),
            recall=float((values > 0.5).mean()),
            decay=float(quarters[0].mean() - quarters[-1].mean()),
        )


@dataclass(frozen=True)
class ObjectScores:
    """One object's J and F on each scored frame, in frame order.

    sequence: the sequence's name; object_id: the object; frames: (N,) frame indices;
    j, f: (N,) float64 scores on those frames."""

    sequence: str
    object_id: int
    frames: np.ndarray
    j: np.ndarray
    f: np.ndarray

    @property
    def jf(self) -> np.ndarray:
        """(N,) (J + F) / 2 on each frame."""
        return (self.j + self.f) / 2

    @property
    def j_stats(self) -> Statistics:
        return Statistics.of(self.j)

    @property
    def f_stats(self) -> Statistics:
        return Statistics.of(self.f)


class ObjectScorer:
    """Collects one object's J and F frame by frame: `add(frame, pred, gt)`, then `scores()`.
    tolerance: F's matching distance in px (default: DAVIS's for the frames' size)."""

    def __init__(self, sequence: str, object_id: int, tolerance: float | None = None) -> None:
        self.sequence, self.object_id, self.tolerance = sequence, object_id, tolerance
        self._scores: dict[int, tuple[float, float]] = {}

    def add(self, frame: int, pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
        """Score (H, W) `pred` against (H, W) `gt` on `frame` (a frame scored again is
        replaced: a re-propagation's result wins); returns (J, F)."""
        scores = (region_j(pred, gt), boundary_f(pred, gt, self.tolerance))
        self._scores[int(frame)] = scores
        return scores

    def __len__(self) -> int:
        return len(self._scores)

    def score(self, frame: int) -> tuple[float, float]:
        """(J, F) recorded for `frame`."""
        return self._scores[int(frame)]

    def copy(self) -> ObjectScorer:
        """A scorer holding the same scores, to be rescored without touching this one."""
        twin = ObjectScorer(self.sequence, self.object_id, self.tolerance)
        twin._scores = dict(self._scores)
        return twin

    def scores(self) -> ObjectScores:
        frames = np.array(sorted(self._scores), dtype=np.int64)
        j = np.array([self._scores[t][0] for t in frames], dtype=np.float64)
        f = np.array([self._scores[t][1] for t in frames], dtype=np.float64)
        return ObjectScores(self.sequence, self.object_id, frames, j, f)


@dataclass(frozen=True)
class DavisSummary:
    """A dataset's DAVIS statistics, each averaged over its `objects` objects (`frames`: the
    object-frames scored): J and F mean, recall and decay, and J&F mean."""

    objects: int
    frames: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    @classmethod
    def of(cls, scores: Sequence[ObjectScores]) -> DavisSummary:
        if not scores:
            raise DataError("no objects scored")
        j = [s.j_stats for s in scores]
        f = [s.f_stats for s in scores]

        def average(stats: list[Statistics], name: str) -> float:
            return float(np.mean([getattr(s, name) for s in stats]))

        return cls(
            objects=len(scores),
            frames=int(sum(len(s.frames) for s in scores)),
            j_mean=average(j, "mean"),
            j_recall=average(j, "recall"),
            j_decay=average(j, "decay"),
            f_mean=average(f, "mean"),
            f_recall=average(f, "recall"),
            f_decay=average(f, "decay"),
        )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "objects": self.objects,
            "frames": self.frames,
            "j_mean": self.j_mean,
            "j_recall": self.j_recall,
            "j_decay": self.j_decay,
            "f_mean": self.f_mean,
            "f_recall": self.f_recall,
            "f_decay": self.f_decay,
            "jf_mean": self.jf_mean,
        }


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice (2 |A n B| / (|A| + |B|)) of two bool masks of one shape (any rank, e.g. a
    (D, H, W) volume's); 1 when both are empty."""
    if pred.shape != gt.shape:
        raise DataError(f"masks of different shapes: {pred.shape} and {gt.shape}")
    pred, gt = pred.astype(bool, copy=False), gt.astype(bool, copy=False)
    return dice_from_counts(
        int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    )


def dice_from_counts(both: int, pred: int, gt: int) -> float:
    """Dice from voxel counts (summed slice by slice, so no volume is held whole)."""
    return 1.0 if pred + gt == 0 else 2 * both / (pred + gt)
