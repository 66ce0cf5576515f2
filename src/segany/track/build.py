"""`build_tracker`: the right tracker for a model."""

from __future__ import annotations

from typing import Any

import torch

from segany.errors import ConfigError
from segany.modeling.sam2.model import Sam2
from segany.track.base import Tracker
from segany.track.config import ImageTrackerConfig

_SAM2_OPTIONS = ("non_overlap", "cache_frames")


def build_tracker(model: torch.nn.Module, **options: Any) -> Tracker:
    """A `Tracker` for `model` (from `segany.build_sam`).

    SAM 2 / 2.1 models get SAM 2's memory tracker (`segany.track.sam2_tracker`; options
    `non_overlap`, `cache_frames`); every other model (segany-tiny-v2, SAM ViT-B/L/H,
    MobileSAM) the image-model tracker (`segany.track.image_tracker`; options: the fields of
    `ImageTrackerConfig`). `ConfigError` for an option the tracker does not take.
    """
    if isinstance(model, Sam2):
        unknown = sorted(set(options) - set(_SAM2_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown SAM 2 tracker option(s) {unknown}; known: {list(_SAM2_OPTIONS)}"
            )
        from segany.track.sam2_tracker import Sam2VideoTracker

        return Sam2VideoTracker(model, **options)
    if not hasattr(model, "prompt_encoder") or not hasattr(model, "mask_decoder"):
        raise ConfigError(
            f"build_tracker needs a segany model (segany.build_sam(...)), got "
            f"{type(model).__name__}"
        )
    from segany.track.image_tracker import ImageTracker

    config = ImageTrackerConfig.from_options(options)
    return ImageTracker(_at_image_size(model, config.image_size), config)


def _at_image_size(model: torch.nn.Module, image_size: int | None) -> torch.nn.Module:
    """`model`, or a copy sharing its weights that runs its encoder at `image_size` px."""
    if image_size is None or image_size == model.image_size:
        return model
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ConfigError("image_size needs a model built by segany.build_sam (it has no spec)")
    from segany.modeling.build import build_model

    resized = spec.at_image_size(image_size)  # ConfigError for encoders that cannot
    copy = build_model(resized)
    copy.load_state_dict(model.state_dict())
    copy.spec = resized
    return copy.to(model.device).eval()
