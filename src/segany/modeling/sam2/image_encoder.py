"""SAM 2's image encoder: the Hiera trunk and the FPN neck, keyed as the official
checkpoints' `image_encoder.*`."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from segany.errors import ImageError
from segany.modeling.sam2.config import HieraConfig
from segany.modeling.sam2.fpn_neck import FpnNeck
from segany.modeling.sam2.hiera import Hiera


class BackboneOutput(NamedTuple):
    """The encoder's levels, finest first: with the default `scalp` of 1, `features` are
    (B, d_model, S/4, S/4), (B, d_model, S/8, S/8) and the image embedding
    (B, d_model, S/16, S/16) in the input's pixel grid; `positions` their sine encodings,
    of the same shapes."""

    features: list[torch.Tensor]
    positions: list[torch.Tensor]


class Sam2ImageEncoder(nn.Module):
    """(B, 3, S, S) normalised image -> `BackboneOutput`; S is `img_size` normally, any
    multiple of 32 works (the position embedding is resized to the grid)."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        self.trunk = Hiera(config)
        self.neck = FpnNeck(
            config.backbone_channel_list,
            config.d_model,
            config.fpn_top_down_levels,
            config.scalp,
        )

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ImageError(
                f"Sam2ImageEncoder expects a (B, 3, H, W) image batch with H and W multiples "
                f"of 32 (normally {self.img_size}); got shape {tuple(x.shape)}"
            )
        features, positions = self.neck(self.trunk(x))
        return BackboneOutput(features, positions)
