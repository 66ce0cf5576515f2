"""Automatic mask generation ("segment everything"): SAM prompted with a grid of points,
optionally over overlapping crops, filtered by predicted IoU and stability, de-duplicated by
non-maximum suppression.

Same parameters, semantics and records as the reference `SamAutomaticMaskGenerator`, computed
differently: candidates are filtered by predicted IoU on the decoder's low-resolution output,
only survivors are upscaled (a few at a time), and masks are kept as run-length encodings, so
time and memory do not scale with every candidate's full-resolution mask.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from segany.errors import ConfigError
from segany.masks.boxes import (
    is_box_near_crop_edge,
    masks_to_boxes,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from segany.masks.candidates import MaskCandidates
from segany.masks.cleanup import remove_small_regions_from_candidates
from segany.masks.config import AmgConfig
from segany.masks.grids import build_all_layer_point_grids, generate_crop_boxes
from segany.masks.nms import batched_nms, box_area
from segany.masks.records import to_records
from segany.masks.rle import masks_to_rle
from segany.masks.stability import stability_score
from segany.modeling.sam import Sam
from segany.predictor import SamPredictor
from segany.validation import as_rgb_array

# Upscaled float logits held at once while filtering by stability (per chunk of candidates).
UPSCALE_CHUNK_BYTES = 64 * 2**20
# Prompts decoded together. The decoder's per-prompt cost grows with the batch on a CPU
# (each prompt carries several MB of image-sized activations), so a batch of
# `points_per_batch` prompts is decoded a few at a time; results are identical.
DECODER_MICRO_BATCH = 4

T = TypeVar("T")
# `run_step(step) -> step()`, wherever and whenever the caller runs it (see `generate`).
StepRunner = Callable[[Callable[[], T]], T]


class AutomaticMaskGenerator:
    """Generate masks for a whole image.

    Args:
        model: a `Sam` or `Sam2` model (from `segany.build_sam`).
        config: an `AmgConfig`; by default SAM's options with the model's own defaults
            (`ModelSpec.amg_defaults`, e.g. segany-tiny's thresholds) applied.
        point_grids: explicit (n, 2) grids in [0, 1] xy, one per crop layer (then
            points_per_side=None).
        **options: any `AmgConfig` field, overriding `config` (the reference generator's
            keyword arguments: points_per_side, pred_iou_thresh, stability_score_thresh,
            box_nms_thresh, crop_n_layers, min_mask_region_area, output_mode, ...). Beyond the
            reference, `skip_covered_points` (off by default) does not prompt grid points
            inside a mask already accepted on the same crop (faster, slightly different output).
            From SAM 2's generator: `multimask_output`, `use_m2m` (mask-to-mask refinement)
            and `mask_threshold`; with a SAM 2 model the masks are those of the reference
            `SAM2AutomaticMaskGenerator` (its `min_mask_region_area` aside: that one fills
            holes on CUDA only, this one removes small regions as SAM's generator does).
    """

    def __init__(
        self,
        model: Sam,
        config: AmgConfig | None = None,
        point_grids: list[np.ndarray] | None = None,
        **options: Any,
    ) -> None:
        if config is not None and not isinstance(config, AmgConfig):
            raise ConfigError(
                f"config must be an AmgConfig, got {type(config).__name__}; give options by "
                "keyword, e.g. AutomaticMaskGenerator(model, points_per_side=32)"
            )
        if config is None:
            config = AmgConfig.for_model(model.spec)
        if options:
            # A None option is kept when it is points_per_side (explicit grids), not "unset".
            known = {f.name for f in dataclasses.fields(AmgConfig)}
            unknown = sorted(set(options) - known)
            if unknown:
                raise ConfigError(
                    f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            config = dataclasses.replace(config, **options)
        self.config = config
        self.config.validate(has_point_grids=point_grids is not None)
        if point_grids is None:
            point_grids = build_all_layer_point_grids(
                config.points_per_side, config.crop_n_layers, config.crop_n_points_downscale_factor
            )
        elif len(point_grids) != config.crop_n_layers + 1:
            raise ConfigError(
                f"point_grids needs one grid per crop layer ({config.crop_n_layers + 1}), "
                f"got {len(point_grids)}"
            )
        self.point_grids = [np.asarray(grid, dtype=np.float64) for grid in point_grids]
        self.predictor = SamPredictor(model)

    @torch.inference_mode()
    def generate(self, image: Any, run_step: StepRunner | None = None) -> list[dict[str, Any]]:
        """Masks of an (H, W, 3) uint8 RGB array or PIL image, as a list of records with keys
        segmentation, area, bbox (XYWH), predicted_iou, point_coords, stability_score and
        crop_box (XYWH).

        run_step: how each step of the work runs: `run_step(step)` calls the zero-argument
        `step` and returns its result (default: here, at once). Every tensor operation
        happens inside a step; there are `step_count(H, W)` of them, run one after another:
        per crop one encoder pass, one per point batch and one that merges the crop's masks,
        then one that merges the crops and writes the records. A server runs them on its
        compute thread between other work, and stops a cancelled job by raising from
        `run_step` (the error reaches the caller; the generator stays usable).
        """
        run = _Steps(run_step)
        image = as_rgb_array(image)
        parts = self._crops(image, run)
        return run(self._finish, parts)

    def step_count(self, height: int, width: int) -> int:
        """How many steps `generate` runs (`run_step` calls) for an image of (height, width)."""
        cfg = self.config
        _, layer_idxs = generate_crop_boxes(
            (height, width), cfg.crop_n_layers, cfg.crop_overlap_ratio
        )
        batches = [-(-len(self.point_grids[layer]) // cfg.points_per_batch) for layer in layer_idxs]
        return sum(2 + n for n in batches) + 1

    @torch.inference_mode()
    def generate_candidates(self, image: np.ndarray) -> MaskCandidates:
        """All crops' masks after filtering and NMS, before small-region cleanup."""
        return self._merge_crops(self._crops(image, _Steps(None)))

    def _crops(self, image: np.ndarray, run: _Steps) -> list[MaskCandidates]:
        """Each crop's masks (filtered, NMS within the crop) in the original image frame."""
        cfg = self.config
        crop_boxes, layer_idxs = generate_crop_boxes(
            image.shape[:2], cfg.crop_n_layers, cfg.crop_overlap_ratio
        )
        return [
            self._process_crop(image, box, layer, run)
            for box, layer in zip(crop_boxes, layer_idxs, strict=True)
        ]

    def _finish(self, parts: list[MaskCandidates]) -> list[dict[str, Any]]:
        """One step: the crops merged, small regions cleaned up, the records."""
        candidates = self._merge_crops(parts)
        if self.config.min_mask_region_area > 0:
            candidates = remove_small_regions_from_candidates(
                candidates,
                self.config.min_mask_region_area,
                max(self.config.box_nms_thresh, self.config.crop_nms_thresh),
            )
        return to_records(candidates, self.config.output_mode)

    def _merge_crops(self, parts: list[MaskCandidates]) -> MaskCandidates:
        candidates = MaskCandidates.cat(parts)
        if len(parts) > 1 and len(candidates):
            # Between crops, prefer masks from smaller crops.
            scores = 1 / box_area(candidates.crop_boxes)  # float32, as the reference
            keep = batched_nms(
                candidates.boxes.float(),
                scores,
                torch.zeros(len(candidates), dtype=torch.int64),
                self.config.crop_nms_thresh,
            )
            candidates = candidates.filter(keep)
        return candidates

    def _process_crop(
        self, image: np.ndarray, crop_box: list[int], layer: int, run: _Steps
    ) -> MaskCandidates:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        crop_h, crop_w = crop.shape[:2]
        points = self.point_grids[layer] * np.array([[crop_w, crop_h]])
        try:
            covered = run(self._start_crop, crop)
            parts = [
                run(
                    self._process_batch,
                    points[start : start + self.config.points_per_batch],
                    crop_box,
                    image.shape[:2],
                    covered,
                )
                for start in range(0, len(points), self.config.points_per_batch)
            ]
        finally:
            self.predictor.reset_image()
        return run(self._end_crop, parts, crop_box)

    def _start_crop(self, crop: np.ndarray) -> torch.Tensor | None:
        """One step: the crop's encoder pass; the (h, w) mask of covered pixels when
        `skip_covered_points` (else None)."""
        self.predictor.set_image(crop)
        if not self.config.skip_covered_points:
            return None
        return torch.zeros(crop.shape[:2], dtype=torch.bool)

    def _end_crop(self, parts: list[MaskCandidates], crop_box: list[int]) -> MaskCandidates:
        """One step: NMS among the crop's masks, their boxes and points into the image frame."""
        candidates = MaskCandidates.cat(parts)
        if len(candidates):
            keep = batched_nms(
                candidates.boxes.float(),
                candidates.iou,
                torch.zeros(len(candidates), dtype=torch.int64),
                self.config.box_nms_thresh,
            )
            candidates = candidates.filter(keep)
        candidates.boxes = uncrop_boxes_xyxy(candidates.boxes, crop_box)
        candidates.points = uncrop_points(candidates.points, crop_box)
        candidates.crop_boxes = torch.tensor([crop_box], dtype=torch.int64).expand(
            len(candidates), 4
        )
        return candidates

    def _process_batch(
        self,
        points: np.ndarray,
        crop_box: list[int],
        orig_size: tuple[int, int],
        covered: torch.Tensor | None,
    ) -> MaskCandidates:
        """One step: a batch of prompts. points: (B, 2) xy in the crop frame; covered: the
        crop's (h, w) covered pixels (`skip_covered_points`: their points are not prompted;
        updated here) or None. Returns candidates in the crop frame, with RLEs already in the
        original image frame."""
        cfg = self.config
        if covered is not None:
            points = _uncovered(points, covered)
            if len(points) == 0:
                return MaskCandidates()
        predictor = self.predictor
        model = predictor.model
        coords = torch.as_tensor(
            predictor.to_input_frame(points), dtype=torch.float, device=predictor.device
        )[:, None, :]  # (B, 1, 2) input frame
        # Prompts none of whose masks pass the IoU filter below skip the decoder's upscaling;
        # with m2m the filter judges the refined masks, so the first pass computes them all.
        skip = cfg.pred_iou_thresh if cfg.pred_iou_thresh > 0.0 else None
        low_res, iou = self._decode(
            coords, None, cfg.multimask_output, None if cfg.use_m2m else skip
        )
        per_point = low_res.shape[1]
        low_res = low_res.flatten(0, 1)  # (B * C, 4h, 4w), point-major
        iou = iou.flatten(0, 1)
        point_of = torch.as_tensor(points).repeat_interleave(per_point, dim=0)
        if cfg.use_m2m:
            # SAM 2's mask-to-mask step: each mask once more from its point and its own logits,
            # clamped as SAM2ImagePredictor hands them back, one output per prompt.
            mask_input = low_res.clamp(-32.0, 32.0)[:, None]  # (B * C, 1, 4h, 4w)
            low_res, iou = self._decode(
                coords.repeat_interleave(per_point, dim=0), mask_input, False, skip
            )
            low_res, iou = low_res[:, 0], iou[:, 0]
        iou = iou.cpu()

        # Predicted IoU needs no upscaling: filter first.
        index = torch.arange(len(iou))
        if cfg.pred_iou_thresh > 0.0:
            index = index[iou > cfg.pred_iou_thresh]

        crop_h, crop_w = predictor.original_size
        per_chunk = max(1, UPSCALE_CHUNK_BYTES // (4 * crop_h * crop_w))
        kept: list[torch.Tensor] = []
        stabilities, boxes, rles = [], [], []
        for start in range(0, len(index), per_chunk):
            chunk = index[start : start + per_chunk]
            logits = model.postprocess_masks(
                low_res[chunk.to(low_res.device)][None],
                predictor.input_size,
                predictor.original_size,
            )[0].cpu()  # (k, crop_h, crop_w)
            stability = stability_score(logits, cfg.mask_threshold, cfg.stability_score_offset)
            if cfg.stability_score_thresh > 0.0:
                stable = stability >= cfg.stability_score_thresh
                chunk, logits, stability = chunk[stable], logits[stable], stability[stable]
            # Thresholded (at cfg.mask_threshold: shifted to the predictor's threshold), with the
            # edges refined where the model's predictor does that.
            shift = cfg.mask_threshold - model.mask_threshold
            shifted = logits if shift == 0 else logits - shift
            masks = torch.from_numpy(predictor.threshold_masks(shifted.numpy()))
            del shifted
            del logits
            chunk_boxes = masks_to_boxes(masks)
            inside = ~is_box_near_crop_edge(
                chunk_boxes, crop_box, [0, 0, orig_size[1], orig_size[0]]
            )
            masks = masks[inside]
            kept.append(chunk[inside])
            stabilities.append(stability[inside])
            boxes.append(chunk_boxes[inside])
            rles += masks_to_rle(masks, offset=(crop_box[0], crop_box[1]), full_size=orig_size)
            if covered is not None and len(masks):
                covered |= masks.any(dim=0)
        if not kept:
            return MaskCandidates()
        index = torch.cat(kept)
        return MaskCandidates(
            rles=rles,
            boxes=torch.cat(boxes),
            iou=iou[index],
            stability=torch.cat(stabilities),
            points=point_of[index],
            crop_boxes=torch.zeros((len(index), 4), dtype=torch.int64),
        )

    def _decode(
        self,
        coords: torch.Tensor,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
        skip_below_iou: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits (B, C, 4h, 4w) and IoU predictions (B, C) for B one-point
        prompts: coords (B, 1, 2) input frame, foreground; mask_input (B, 1, 4h, 4w) or None."""
        predictor = self.predictor
        step = DECODER_MICRO_BATCH if predictor.device.type == "cpu" else len(coords)
        labels = torch.ones(len(coords), 1, dtype=torch.int, device=predictor.device)
        outputs = [
            predictor.predict_low_res_torch(
                coords[i : i + step],
                labels[i : i + step],
                mask_input=None if mask_input is None else mask_input[i : i + step],
                multimask_output=multimask_output,
                skip_below_iou=skip_below_iou,
            )
            for i in range(0, len(coords), step)
        ]
        return torch.cat([low for low, _ in outputs]), torch.cat([iou for _, iou in outputs])


class _Steps:
    """`generate`'s steps through the caller's `run_step`, each in inference mode on whatever
    thread runs it (`torch.inference_mode` holds for the thread that enters it)."""

    def __init__(self, run_step: StepRunner | None) -> None:
        self.run_step = run_step

    def __call__(self, function: Callable[..., T], *args: Any) -> T:
        if self.run_step is None:
            return function(*args)
        return self.run_step(functools.partial(_in_inference_mode, function, *args))


def _in_inference_mode(function: Callable[..., T], *args: Any) -> T:
    with torch.inference_mode():
        return function(*args)


def _uncovered(points: np.ndarray, covered: torch.Tensor) -> np.ndarray:
    """The (B, 2) crop-frame points whose pixel is not yet covered by an accepted mask."""
    h, w = covered.shape
    cols = np.clip(points[:, 0].astype(np.int64), 0, w - 1)
    rows = np.clip(points[:, 1].astype(np.int64), 0, h - 1)
    free = ~covered[torch.as_tensor(rows), torch.as_tensor(cols)].numpy()
    return points[free]
