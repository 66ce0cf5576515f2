"""Automatic suggestions, the work behind `/auto`: the automatic mask generator run in slices on
the compute thread, then its masks ranked and de-duplicated against each other and against the
image's accepted annotations.

A slice is one generator step (an encoder pass, a batch of `AUTO_POINTS_PER_BATCH` prompts, a
merge; `AutomaticMaskGenerator.generate`'s `run_step`), queued at `Priority.JOB`: a click that
arrives while Auto runs waits for the slice in progress, not for the whole run. Between
slices `on_step` reports progress and may stop the work (a cancelled job).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segany.compute_thread import Priority
from segany.formats.segmentation import to_binary_mask
from segany.project.image_files import StoredImage, read_checked
from segany.server.inference import ModelService, mask_record

# Prompts per slice on a CPU. The generator's masks do not depend on it (test_amg_steps), the
# time a click may wait does: segany-tiny-v2 on a 640 x 480 image on the 2-core machine (busy
# with other work), a slice of 4 prompts (one decoder call) took 130 ms (median), of 8 255 ms,
# of 16 530 ms, of SAM's 64 2.2 s, for the same 33 s in all.
AUTO_POINTS_PER_BATCH = 4
# On a GPU a batch of SAM's default 64 takes milliseconds.
GPU_POINTS_PER_BATCH = 64
# A suggestion overlapping a better one (or an accepted annotation) more than this is dropped.
SUGGESTION_OVERLAP = 0.5

# on_step(done, total): called before each slice and after the last; raising stops the work.
StepCallback = Callable[[int, int], None]


def propose(
    service: ModelService,
    image: StoredImage,
    existing: list[dict[str, Any]] = (),
    on_step: StepCallback | None = None,
) -> list[dict[str, Any]]:
    """Suggestions for the semi-automatic stage: automatic masks (the model's AMG defaults),
    best predicted IoU first, without near-duplicates (mask IoU above `SUGGESTION_OVERLAP`
    with a better one) and without masks the image's `existing` annotations (COCO RLEs)
    already cover. Each is a `mask_record` (upright image pixels) with its stability."""
    from segany.masks.generator import AutomaticMaskGenerator

    pixels = read_checked(image)  # (H, W, 3) uint8, upright
    # One generator per run: it holds its image's embedding between slices, and two runs may
    # take turns on the compute thread.
    on_cpu = service.model.device.type == "cpu"
    generator = AutomaticMaskGenerator(
        service.model,
        output_mode="coco_rle",
        points_per_batch=AUTO_POINTS_PER_BATCH if on_cpu else GPU_POINTS_PER_BATCH,
    )
    total = generator.step_count(*pixels.shape[:2])
    done = 0

    def run_step(step: Callable[[], Any]) -> Any:
        nonlocal done
        if on_step is not None:
            on_step(done, total)
        result = service.compute.run_at(Priority.JOB, step)
        done += 1
        return result

    records = generator.generate(pixels, run_step)
    if on_step is not None:
        on_step(done, total)
    # Off the compute thread from here: RLE overlaps and outlines, no torch (a second thread
    # running torch would get an OpenMP pool of its own; see segany.compute_thread).
    records.sort(key=lambda r: -float(r["predicted_iou"]))
    kept = distinct_masks([r["segmentation"] for r in records], list(existing))
    out = []
    for index in kept:
        record = records[index]
        rle = record["segmentation"]
        item = mask_record(to_binary_mask(rle), record["predicted_iou"], rle=rle)
        item["stability"] = float(record["stability_score"])
        out.append(item)
    return out


def distinct_masks(candidates: list[dict[str, Any]], existing: list[dict[str, Any]]) -> list[int]:
    """Indices of `candidates` (COCO RLEs, best first) kept by greedy mask-IoU suppression at
    SUGGESTION_OVERLAP, against the kept ones and the `existing` RLEs."""
    from pycocotools import mask as coco_mask

    def encoded(rle: dict[str, Any]) -> dict[str, Any]:
        counts = rle["counts"]
        return {
            "size": rle["size"],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }

    taken = [encoded(rle) for rle in existing]
    kept = []
    for index, rle in enumerate(candidates):
        mask = encoded(rle)
        if taken:
            overlap = coco_mask.iou([mask], taken, [0] * len(taken))
            if float(overlap.max()) > SUGGESTION_OVERLAP:
                continue
        kept.append(index)
        taken.append(mask)
    return kept
