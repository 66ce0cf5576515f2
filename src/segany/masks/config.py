"""The automatic mask generator's options: one dataclass, the single source of their names,
defaults (SAM's), ranges and help, from which the generator, the engine and `segany amg` take
them. A model's own defaults (`ModelSpec.amg_defaults`) are applied by `AmgConfig.for_model`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from segany.errors import ConfigError
from segany.masks.records import OUTPUT_MODES

# Crop layers beyond this would run thousands of encoder passes on one image (4**i crops each).
MAX_CROP_LAYERS = 4


def _option(default: Any, help: str, cli: bool = True) -> Any:
    """A field with its help text; `cli`: whether `segany amg` has a flag for it."""
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class AmgConfig:
    """The automatic mask generator's options, with SAM's defaults.

    points_per_side: None only when explicit point grids are given to the generator.
    The SAM 2 models differ in `pred_iou_thresh` (0.8, their `ModelSpec.amg_defaults`), as the
    reference `SAM2AutomaticMaskGenerator`; its other defaults are SAM's.
    """

    points_per_side: int | None = _option(
        32, "grid points along each side of the image (N*N prompts)"
    )
    points_per_batch: int = _option(64, "prompts decoded together (more: faster, more memory)")
    pred_iou_thresh: float = _option(0.88, "keep masks whose predicted IoU is above this")
    stability_score_thresh: float = _option(
        0.95, "keep masks whose stability score is at least this"
    )
    stability_score_offset: float = _option(1.0, "logit offset of the stability score")
    box_nms_thresh: float = _option(0.7, "box IoU above which a duplicate mask is dropped")
    crop_n_layers: int = _option(0, "> 0: run again on 4, 16, ... overlapping crops")
    crop_nms_thresh: float = _option(0.7, "box NMS threshold between crops")
    crop_overlap_ratio: float = _option(512 / 1500, "crop overlap, a fraction of the short side")
    crop_n_points_downscale_factor: int = _option(1, "points per side on crop layer i: / factor**i")
    min_mask_region_area: int = _option(0, "> 0: remove holes and islands smaller than this (px)")
    output_mode: str = _option(
        "binary_mask", "record masks as binary_mask, uncompressed_rle or coco_rle", cli=False
    )
    skip_covered_points: bool = _option(
        False,
        "do not prompt grid points inside masks already kept (faster; output differs "
        "slightly from SAM's)",
    )
    # SAM 2's generator added these three (`SAM2AutomaticMaskGenerator`); they work with every
    # model.
    multimask_output: bool = _option(
        True, "3 masks per grid point (off: 1, the model's single-mask output)"
    )
    use_m2m: bool = _option(
        False,
        "mask-to-mask refinement: decode every mask once more, prompted with its point and "
        "its own low-resolution logits, and filter the refined masks (SAM 2's; a second "
        "decoder pass)",
    )
    mask_threshold: float = _option(0.0, "logit above which a pixel belongs to a mask")

    @classmethod
    def for_model(cls, spec: Any = None, **options: Any) -> AmgConfig:
        """SAM's defaults, then the model's own (`spec.amg_defaults`, spec a `ModelSpec` or
        None), then `options` (None values are left out: "not set"). `ConfigError` for an
        unknown option name; the result is not yet validated (see `validate`)."""
        model_defaults = dict(getattr(spec, "amg_defaults", None) or {})
        chosen = {k: v for k, v in options.items() if v is not None}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((model_defaults.keys() | chosen.keys()) - known)
        if unknown:
            raise ConfigError(
                f"unknown automatic-mask option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**{**model_defaults, **chosen})

    def thresholds(self) -> str:
        """The filters' settings in words, for messages."""
        return (
            f"pred_iou_thresh {self.pred_iou_thresh:g}, "
            f"stability_score_thresh {self.stability_score_thresh:g}"
        )

    def validate(self, has_point_grids: bool) -> None:
        if (self.points_per_side is None) == (not has_point_grids):
            raise ConfigError("give exactly one of points_per_side and point_grids")
        if self.points_per_side is not None and self.points_per_side < 1:
            raise ConfigError(f"points_per_side must be >= 1, got {self.points_per_side}")
        if self.points_per_batch < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {self.points_per_batch}")
        if not 0 <= self.crop_n_layers <= MAX_CROP_LAYERS:
            raise ConfigError(
                f"crop_n_layers must be >= 0 and <= {MAX_CROP_LAYERS}, got {self.crop_n_layers} "
                f"(layer i adds 4**i crops, each a full encoder pass; {MAX_CROP_LAYERS} layers "
                f"already run {sum(4**i for i in range(MAX_CROP_LAYERS + 1))})"
            )
        for name in ("pred_iou_thresh", "stability_score_thresh"):
            if getattr(self, name) > 1.0:  # below 0 is allowed: it keeps every mask
                raise ConfigError(
                    f"{name} must be at most 1 (a fraction, e.g. 0.88), got {getattr(self, name)}; "
                    "above 1 no mask would be kept"
                )
        if self.crop_n_points_downscale_factor < 1:
            raise ConfigError("crop_n_points_downscale_factor must be >= 1")
        for name in ("box_nms_thresh", "crop_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise ConfigError(
                f"crop_overlap_ratio must be in [0, 1), got {self.crop_overlap_ratio}"
            )
        if self.min_mask_region_area < 0:
            raise ConfigError("min_mask_region_area must be >= 0")
        if self.output_mode not in OUTPUT_MODES:
            raise ConfigError(
                f"output_mode must be one of {', '.join(OUTPUT_MODES)}, got {self.output_mode!r}"
            )
