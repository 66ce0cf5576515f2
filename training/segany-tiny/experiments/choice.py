"""Where a model's 1-point score goes: the quality of its three masks, or the choice among them.
Reproduces the output-choice table in ../NOTES.md:

    python training/segany-tiny/experiments/choice.py [--checkpoint FILE] [--split val]
        [--images 40] [--size 256]
    python training/segany-tiny/experiments/choice.py --model segany-tiny-v2 \
        --checkpoint training/segany-tiny-v2/checkpoints/stage7.safetensors \
        --data "scenes:val:8 + photo:val:8"

For every mask of at least `segany eval`'s minimum area, the model gets `segany eval`'s first
click (the mask's interior point farthest from its border) and returns three masks. The IoU
with the ground truth is then averaged for each way of choosing one of the three: the IoU
head (what `segany eval` and SAM do), a fixed output index, the highest stability score
(SAM's, offset 1), the highest predicted IoU x stability, the single-mask output
(`multimask_output=False`), SAM 2's dynamic rule (the single-mask output when its stability
score with offset 0.05 is at least 0.98, else the IoU head's pick of the three), the IoU
head's pick given back as a mask prompt with the same click (one more decoder pass, the
single-mask output: "reprompt"), and the oracle (best of 3). The
rows split the masks into "unambiguous" (the click lies in one ground-truth mask) and
"ambiguous" (it lies in several: nested parts). Uses the validation split by default, so that
choosing a recipe never looks at the test split.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from segany import SamPredictor, build_sam
from segany.data.sample import Sample
from segany.data.spec import SyntheticScenes, open_dataset
from segany.data.synthetic import SceneConfig
from segany.evaluation.evaluator import EvalConfig
from segany.evaluation.metrics import interior_point, iou
from segany.masks.stability import stability_score

CHOICES = (
    "IoU head",
    "output 0",
    "output 1",
    "output 2",
    "stability",
    "IoUxstab",
    "single",
    "dynamic",
    "reprompt",
    "oracle",
)
# SAM 2's dynamic multimask rule: trust the single-mask output when it is this stable.
DYNAMIC_OFFSET, DYNAMIC_STABILITY = 0.05, 0.98


def choice_rows(predictor: SamPredictor, scenes: Sequence[Sample]) -> list[dict[str, float]]:
    """One row per evaluated mask: the IoU of each choice in `CHOICES`, and "ambiguous" (1.0
    when the click lies in more than one ground-truth mask)."""
    min_area = EvalConfig().min_area
    rows = []
    for index in range(len(scenes)):
        sample = scenes[index]
        truths = sample.masks.to_numpy()  # (M, H, W) bool
        predictor.set_image(sample.image)
        for truth in truths:
            if truth.sum() < min_area:
                continue
            x, y = interior_point(truth)
            logits, scores, low_res = predictor.predict(
                point_coords=np.array([[x, y]], dtype=np.float32),
                point_labels=np.array([1]),
                multimask_output=True,
                return_logits=True,
            )  # (3, H, W), (3,), (3, h, w)
            threshold = predictor.model.mask_threshold
            ious = [iou(mask, truth) for mask in logits > threshold]
            stability = stability_score(torch.as_tensor(logits), threshold, 1.0).numpy()
            row = dict(zip(CHOICES[1:4], ious, strict=True))
            row["IoU head"] = ious[int(np.argmax(scores))]
            row["stability"] = ious[int(np.argmax(stability))]
            row["IoUxstab"] = ious[int(np.argmax(scores * stability))]
            single_logits, _, _ = predictor.predict(
                point_coords=np.array([[x, y]], dtype=np.float32),
                point_labels=np.array([1]),
                multimask_output=False,
                return_logits=True,
            )  # (1, H, W)
            row["single"] = iou(single_logits[0] > threshold, truth)
            single_stability = stability_score(
                torch.as_tensor(single_logits), threshold, DYNAMIC_OFFSET
            )
            stable = float(single_stability[0]) >= DYNAMIC_STABILITY
            row["dynamic"] = row["single"] if stable else row["IoU head"]
            again, _, _ = predictor.predict(
                point_coords=np.array([[x, y]], dtype=np.float32),
                point_labels=np.array([1]),
                mask_input=low_res[int(np.argmax(scores))][None],
                multimask_output=False,
                return_logits=True,
            )  # (1, H, W)
            row["reprompt"] = iou(again[0] > threshold, truth)
            row["oracle"] = max(ious)
            row["ambiguous"] = float(truths[:, y, x].sum() > 1)
            rows.append(row)
    return rows


def mean_by_choice(rows: list[dict[str, float]]) -> list[float]:
    """The mean IoU of each choice in `CHOICES` over `rows` (not empty)."""
    return [float(np.mean([r[c] for r in rows])) for c in CHOICES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segany-tiny", help="registered model name")
    parser.add_argument("--checkpoint", help="weights to load (default: the shipped ones)")
    parser.add_argument("--data", help="any `segany eval` data spec (instead of --split, ...)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    model = build_sam(args.model, checkpoint=args.checkpoint)
    if args.data:
        scenes = open_dataset(args.data)
    else:
        scenes = SyntheticScenes(
            args.split, args.images, SceneConfig(height=args.size, width=args.size)
        )
    rows = choice_rows(SamPredictor(model), scenes)
    print(f"{'masks':<12} {'count':>6} " + " ".join(f"{c:>9}" for c in CHOICES))
    groups = (("all", None), ("unambiguous", 0.0), ("ambiguous", 1.0))
    for name, ambiguous in groups:
        chosen = [r for r in rows if ambiguous is None or r["ambiguous"] == ambiguous]
        if chosen:
            means = mean_by_choice(chosen)
            print(f"{name:<12} {len(chosen):>6} " + " ".join(f"{m:>9.3f}" for m in means))


if __name__ == "__main__":
    main()
