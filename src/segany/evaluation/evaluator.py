"""`Evaluator`: point-prompt metrics of a predictor over a dataset of `Sample`s.

Per ground-truth mask, with simulated clicks (see `metrics`):
  - 1-point IoU: one positive click at the mask's interior point, three candidate masks, the
    one with the highest predicted IoU taken;
  - oracle IoU: the best of those three against the ground truth (SAM's "oracle" metric);
  - NoC@85 / NoC@90: clicks until the IoU first reaches 0.85 / 0.90. The first click is the
    one above; each next click is made on the largest error region of the current mask and
    given together with all earlier clicks and the current mask's low-resolution logits (as
    `mask_input`). `clicks="sam"` (SAM's protocol, the default) takes the single-mask output;
    `clicks="consistent"` takes the best of `segany.interactive.predict_edit`'s candidates, the
    annotation app's rule (the single-mask output unless it contradicts a click). A mask never
    reaching the IoU in `max_clicks` clicks counts `max_clicks`;
  - boundary F: the boundary F-score of the 1-point mask within `boundary_tolerance` px (see
    `boundary`).

Masks smaller than `min_area` pixels are skipped (counted in `skipped_masks`): a click protocol
on a few pixels measures little but rounding. Masks under `tiny_side` x `tiny_side` px of
area are evaluated but also summarised apart ("tiny" in `size_split`), so that the yardstick's
figures on objects of at least 24 x 24 px are not blurred by them. Each image is encoded once
for all its masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from segany.data.sample import Sample
from segany.errors import ConfigError, DataError
from segany.evaluation.boundary import DEFAULT_TOLERANCE, boundary_fscore
from segany.evaluation.metrics import click_from_error, interior_point, iou
from segany.interactive import CLICK_RULES, predict_edit

NOC_THRESHOLDS = (0.85, 0.90)
# COCO's size classes by mask area in pixels: small < 32^2 <= medium < 96^2 <= large.
SIZE_CLASSES = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, None))
TINY_SIDE = 24  # px; masks of smaller area than TINY_SIDE**2 are the "tiny" class


class PointPredictor(Protocol):
    """What the evaluator needs of a predictor: `SamPredictor`'s NumPy API."""

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class EvalConfig:
    """max_clicks: most clicks per mask for NoC; min_area: smaller masks (px) are skipped;
    tiny_side: masks of area under tiny_side**2 px are also summarised apart; boundary_tolerance:
    px within which boundary pixels match for the boundary F-score; clicks: how each click after
    the first is answered, "sam" or "consistent" (see the module docstring; "consistent" needs
    segany's `SamPredictor`)."""

    max_clicks: int = 20
    min_area: int = 16
    tiny_side: int = TINY_SIDE
    boundary_tolerance: float = DEFAULT_TOLERANCE
    clicks: str = "sam"

    def __post_init__(self) -> None:
        if self.max_clicks < 1:
            raise ConfigError(f"max_clicks must be at least 1, got {self.max_clicks}")
        if self.min_area < 1:
            raise ConfigError(f"min_area must be at least 1 px, got {self.min_area}")
        if self.tiny_side < 0:
            raise ConfigError(f"tiny_side must be at least 0 px, got {self.tiny_side}")
        if self.boundary_tolerance < 0:
            raise ConfigError(
                f"boundary_tolerance must be at least 0 px, got {self.boundary_tolerance}"
            )
        if self.clicks not in CLICK_RULES:
            rules = ", ".join(CLICK_RULES)
            raise ConfigError(f"clicks must be one of {rules}, got {self.clicks!r}")


@dataclass(frozen=True)
class MaskResult:
    """The metrics of one ground-truth mask.

    Attributes:
        image: the sample's name; index: the mask's index in the sample; area: its pixels.
        one_point_iou, oracle_iou: see the module docstring.
        noc85, noc90: clicks to reach IoU 0.85 / 0.90 (`max_clicks` if never reached).
        ious: the IoU after each click, as many as were made (clicks stop once 0.90 is
            reached, or at `max_clicks`).
        boundary_f: the boundary F-score of the 1-point mask.
    """

    image: str
    index: int
    area: int
    one_point_iou: float
    oracle_iou: float
    noc85: int
    noc90: int
    ious: tuple[float, ...]
    boundary_f: float


@dataclass(frozen=True)
class EvalSummary:
    """Means over the evaluated masks. nof85 / nof90: masks that never reached the IoU.
    boundary_f: the mean boundary F-score of the 1-point masks (within boundary_tolerance px).
    by_size: for each COCO size class with masks ("small", "medium", "large", see
    `SIZE_CLASSES`), its mask count, 1-point and oracle mIoU, NoC@85, NoC@90 and boundary F.
    size_split: the same for "objects" (area at least tiny_side**2 px) and "tiny" (smaller),
    each class left out when it has no mask. clicks: the rule that answered the later clicks."""

    images: int
    masks: int
    skipped_masks: int
    one_point_miou: float
    oracle_miou: float
    noc85: float
    noc90: float
    nof85: int
    nof90: int
    max_clicks: int
    min_area: int
    by_size: dict[str, dict[str, float]]
    boundary_f: float
    boundary_tolerance: float
    tiny_side: int
    size_split: dict[str, dict[str, float]]
    clicks: str

    @classmethod
    def from_results(
        cls, results: Sequence[MaskResult], images: int, skipped: int, config: EvalConfig
    ) -> EvalSummary:
        """The summary of `results`, from `images` images, `skipped` masks left out."""
        if not results:
            raise ValueError("no mask results to summarise")
        return cls(
            images=images,
            masks=len(results),
            skipped_masks=skipped,
            one_point_miou=float(np.mean([r.one_point_iou for r in results])),
            oracle_miou=float(np.mean([r.oracle_iou for r in results])),
            noc85=float(np.mean([r.noc85 for r in results])),
            noc90=float(np.mean([r.noc90 for r in results])),
            nof85=sum(max(r.ious) < NOC_THRESHOLDS[0] for r in results),
            nof90=sum(max(r.ious) < NOC_THRESHOLDS[1] for r in results),
            max_clicks=config.max_clicks,
            min_area=config.min_area,
            by_size=_by_size(results),
            boundary_f=float(np.mean([r.boundary_f for r in results])),
            boundary_tolerance=config.boundary_tolerance,
            tiny_side=config.tiny_side,
            size_split=_size_split(results, config.tiny_side),
            clicks=config.clicks,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Evaluator:
    """Point-prompt metrics of `predictor` (a `SamPredictor`, or anything with its
    `set_image` / `predict`) under `config` (default `EvalConfig()`)."""

    def __init__(self, predictor: PointPredictor, config: EvalConfig | None = None) -> None:
        self.predictor = predictor
        self.config = EvalConfig() if config is None else config

    def evaluate(
        self, dataset: Sequence[Sample], max_masks: int | None = None, progress: bool = False
    ) -> EvalSummary:
        """Evaluate the masks of `dataset`'s samples in order, stopping after `max_masks`
        masks (all when None). `progress` shows a tqdm bar over the images on stderr.
        Raises `DataError` when no mask is large enough to evaluate."""
        from tqdm import tqdm

        if max_masks is not None and max_masks < 1:
            raise ConfigError(f"max_masks must be at least 1, got {max_masks}")
        results: list[MaskResult] = []
        images = skipped = 0
        with tqdm(total=len(dataset), unit="image", disable=None if progress else True) as bar:
            for i in range(len(dataset)):
                left = None if max_masks is None else max_masks - len(results)
                sample_results, sample_skipped = self.evaluate_sample(dataset[i], left)
                results += sample_results
                images += bool(sample_results)
                skipped += sample_skipped
                bar.update(1)
                if results:
                    miou = np.mean([r.one_point_iou for r in results])
                    bar.set_postfix(masks=len(results), miou=f"{miou:.3f}")
                if max_masks is not None and len(results) >= max_masks:
                    break
        if not results:
            raise DataError(
                f"nothing to evaluate: all {skipped} masks are smaller than "
                f"min_area = {self.config.min_area} px"
            )
        return EvalSummary.from_results(results, images, skipped, self.config)

    def evaluate_sample(
        self, sample: Sample, max_masks: int | None = None
    ) -> tuple[list[MaskResult], int]:
        """The results of a sample's masks of at least `min_area` px (the first `max_masks` of
        them when given), and the number of masks skipped as too small. The image is encoded
        only if some mask is evaluated."""
        areas = sample.masks.areas()  # (M,)
        large = np.flatnonzero(areas >= self.config.min_area)
        skipped = len(areas) - len(large)
        if max_masks is not None:
            large = large[:max_masks]
        if len(large) == 0:
            return [], skipped
        self.predictor.set_image(sample.image)
        results = [
            self.evaluate_mask(sample.masks[int(i)], sample.name, int(i), int(areas[i]))
            for i in large
        ]
        return results, skipped

    def evaluate_mask(
        self, gt: np.ndarray, image: str = "", index: int = 0, area: int = -1
    ) -> MaskResult:
        """The metrics of one (H, W) bool ground-truth mask of the image currently set on the
        predictor (`image`, `index` and `area` only label the result)."""
        gt = gt.astype(bool, copy=False)
        x, y = interior_point(gt)
        coords = [[x, y]]  # (N, 2) xy pixels in the image frame
        labels = [1]  # (N,)
        masks, scores, low_res = self.predictor.predict(
            point_coords=np.array(coords, dtype=np.float32),
            point_labels=np.array(labels, dtype=np.int64),
            multimask_output=True,
        )  # (3, H, W), (3,), (3, h, w)
        candidates = [iou(mask, gt) for mask in masks]
        chosen = int(np.argmax(scores))
        pred, logits = masks[chosen], low_res[chosen]  # (H, W), (h, w)
        boundary_f = boundary_fscore(pred, gt, self.config.boundary_tolerance)
        ious = [candidates[chosen]]
        while len(ious) < self.config.max_clicks and ious[-1] < max(NOC_THRESHOLDS):
            click = click_from_error(pred, gt)
            assert click is not None, "an IoU below 1 means some pixel is wrong"
            coords.append([click[0], click[1]])
            labels.append(click[2])
            masks, _, low_res = self._next_answer(
                np.array(coords, dtype=np.float32), np.array(labels, dtype=np.int64), logits
            )
            pred, logits = masks[0], low_res[0]
            ious.append(iou(pred, gt))
        noc85, noc90 = (self._clicks_to_reach(ious, t) for t in NOC_THRESHOLDS)
        return MaskResult(
            image=image,
            index=index,
            area=int(np.count_nonzero(gt)) if area < 0 else area,
            one_point_iou=ious[0],
            oracle_iou=max(candidates),
            noc85=noc85,
            noc90=noc90,
            ious=tuple(ious),
            boundary_f=boundary_f,
        )

    def _next_answer(
        self, coords: np.ndarray, labels: np.ndarray, logits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The answer to a click after the first, best first: (C, H, W), (C,), (C, h, w).
        coords (N, 2), labels (N,): all clicks so far; logits (h, w): the current mask's."""
        if self.config.clicks == "consistent":
            return predict_edit(self.predictor, coords, labels, mask_input=logits[None])
        return self.predictor.predict(
            point_coords=coords,
            point_labels=labels,
            mask_input=logits[None],  # (1, h, w)
            multimask_output=False,
        )

    def _clicks_to_reach(self, ious: Sequence[float], threshold: float) -> int:
        for clicks, value in enumerate(ious, start=1):
            if value >= threshold:
                return clicks
        return self.config.max_clicks


def _by_size(results: Sequence[MaskResult]) -> dict[str, dict[str, float]]:
    """`_summary` of each COCO size class present in `results`."""
    classes: dict[str, dict[str, float]] = {}
    for name, low, high in SIZE_CLASSES:
        members = [r for r in results if r.area >= low and (high is None or r.area < high)]
        if members:
            classes[name] = _summary(members)
    return classes


def _size_split(results: Sequence[MaskResult], tiny_side: int) -> dict[str, dict[str, float]]:
    """`_summary` of the "objects" (area >= tiny_side**2 px) and of the "tiny" masks, each
    present only when it has masks."""
    split = {
        "objects": [r for r in results if r.area >= tiny_side**2],
        "tiny": [r for r in results if r.area < tiny_side**2],
    }
    return {name: _summary(members) for name, members in split.items() if members}


def _summary(members: Sequence[MaskResult]) -> dict[str, float]:
    """masks, one_point_miou, oracle_miou, noc85, noc90 and boundary_f of a non-empty group."""
    return {
        "masks": len(members),
        "one_point_miou": float(np.mean([r.one_point_iou for r in members])),
        "oracle_miou": float(np.mean([r.oracle_iou for r in members])),
        "noc85": float(np.mean([r.noc85 for r in members])),
        "noc90": float(np.mean([r.noc90 for r in members])),
        "boundary_f": float(np.mean([r.boundary_f for r in members])),
    }
