"""How well automatic masks cover a dataset's objects: class-agnostic average recall (AR@100,
COCO's definition: recall averaged over IoU thresholds 0.50:0.05:0.95, at most 100 proposals per
image), computed by pycocotools' COCOeval on masks.

The yardstick for a model's automatic-mask defaults (`ModelSpec.amg_defaults`): proposals that
score well here are what `segany amg` with no options should give. AR@100 is also given apart
for the objects of at least `tiny_side` x `tiny_side` px of area and for the tiny ones (the
evaluator's `size_split`), as extra COCOeval area ranges.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segany.data.sample import Sample
from segany.formats.segmentation import to_coco_rle


@dataclass(frozen=True)
class ProposalScores:
    """ar100: average recall with 100 proposals per image; ar10 and ar1 likewise; ap: COCO's
    mask AP (class-agnostic; low when proposals are many and the ground truth partial);
    images, objects (ground-truth masks) and proposals counted. ar100_objects / ar100_tiny:
    AR@100 over the objects of area at least / under tiny_side**2 px, None when there are
    none."""

    ar100: float
    ar10: float
    ar1: float
    ap: float
    images: int
    objects: int
    proposals: int
    ar100_objects: float | None = None
    ar100_tiny: float | None = None
    tiny_side: int = 24

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def proposal_scores(
    generate: Callable[[np.ndarray], list[dict[str, Any]]],
    dataset: Sequence[Sample],
    min_area: int = 0,
    tiny_side: int = 24,
) -> ProposalScores:
    """Run `generate` ((H, W, 3) uint8 -> automatic-mask records with `segmentation` and
    `predicted_iou`, e.g. `AutomaticMaskGenerator.generate`) on every sample and score its
    proposals against the samples' masks (those of at least `min_area` px); `tiny_side` px
    divides objects from tiny masks for `ar100_objects` / `ar100_tiny`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    for image_id, sample in enumerate(dataset, start=1):
        height, width = sample.image.shape[:2]
        images.append({"id": image_id, "height": height, "width": width})
        areas = sample.masks.areas()
        for index in np.flatnonzero(areas >= max(min_area, 1)):
            rle = to_coco_rle(sample.masks[int(index)])
            annotations.append(_annotation(len(annotations) + 1, image_id, rle, int(areas[index])))
        for record in generate(sample.image):
            rle = to_coco_rle(record["segmentation"])
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "score": float(record["predicted_iou"]),
                }
            )
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth.createIndex()
        found = truth.loadRes(detections) if detections else None
        if found is None:
            tiny = sum(a["area"] < tiny_side**2 for a in annotations)
            return ProposalScores(
                *(0.0, 0.0, 0.0, 0.0, len(images), len(annotations), 0),
                ar100_objects=0.0 if len(annotations) > tiny else None,
                ar100_tiny=0.0 if tiny else None,
                tiny_side=tiny_side,
            )
        evaluation = COCOeval(truth, found, iouType="segm")
        evaluation.params.useCats = 0
        evaluation.params.maxDets = [1, 10, 100]
        # Two ranges after COCO's four (summarize() finds those by label): areas are whole
        # pixels, so the tiny range ends half a pixel below tiny_side**2.
        evaluation.params.areaRng = [
            *evaluation.params.areaRng,
            [tiny_side**2, 1e10],
            [0, tiny_side**2 - 0.5],
        ]
        evaluation.params.areaRngLbl = [*evaluation.params.areaRngLbl, "objects", "tiny"]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(0.0, float(v)) for v in evaluation.stats]  # -1: no objects of that kind
    return ProposalScores(
        ar100=stats[8],
        ar10=stats[7],
        ar1=stats[6],
        ap=stats[0],
        images=len(images),
        objects=len(annotations),
        proposals=len(detections),
        ar100_objects=_recall(evaluation, "objects"),
        ar100_tiny=_recall(evaluation, "tiny"),
        tiny_side=tiny_side,
    )


def _recall(evaluation: Any, area: str) -> float | None:
    """AR@100 of one labelled area range of an accumulated COCOeval (as its summarize()
    computes it), None when the range holds no ground truth."""
    index = evaluation.params.areaRngLbl.index(area)
    recall = evaluation.eval["recall"][:, 0, index, -1]  # (T,) per IoU threshold, 100 dets
    recall = recall[recall > -1]
    return float(np.mean(recall)) if len(recall) else None


def _annotation(ann_id: int, image_id: int, rle: dict[str, Any], area: int) -> dict[str, Any]:
    from pycocotools import mask as coco_mask

    encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    x, y, w, h = (float(v) for v in coco_mask.toBbox(encoded))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": rle,
        "area": area,
        "bbox": [x, y, w, h],
        "iscrowd": 0,
    }
