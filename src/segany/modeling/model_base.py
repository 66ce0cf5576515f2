"""What SAM's `Sam` and SAM 2's `Sam2` share for the predictors and applications: the mask
threshold, the image format, the registry spec, the input size and the device."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ModelBase:
    """A mixin for an `nn.Module` with an `image_encoder` (attribute `img_size`) and a
    `pixel_mean` buffer; it adds no parameters or buffers, so state-dict keys are the
    model's own."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    # The `segany.registry.ModelSpec` it was built from (set by `build_sam`; None when the
    # parts were assembled by hand). Applications read per-model defaults from it.
    spec: Any = None

    image_encoder: nn.Module
    pixel_mean: torch.Tensor

    @property
    def image_size(self) -> int:
        """Side of the square model input (1024 for the official models)."""
        return self.image_encoder.img_size

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device
