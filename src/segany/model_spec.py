"""`ModelSpec`: everything that names one model variant (its networks' configs, its weights'
file, address and checksum, its image statistics and defaults). A leaf module: the registry,
checkpoint loading and the model builder all import it, and it imports none of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import torch

from segany.edge_refinement import EdgeRefinement
from segany.errors import ConfigError
from segany.modeling.config import DecoderConfig, EncoderConfig
from segany.modeling.sam2.config import TrackingConfig
from segany.paths import checkpoints_dir

# ImageNet statistics in 0..255 pixel units, as SAM was trained with.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model variant and find its official weights.

    amg_defaults: the automatic-mask options in which this model differs from SAM's (the
    defaults of `segany.masks.AmgConfig`), e.g. thresholds that suit its predicted IoUs; used
    whenever the user sets none (`AmgConfig.for_model`).
    encoder_autocast: a dtype its image encoder was measured to run in as well as in float32
    (same held-out scores); `SamPredictor` uses it by default on devices that compute it
    natively (`segany.devices.computes_bfloat16_natively`). None (every reference model):
    float32, so that masks match the reference.
    tracking: the memory and video options of a SAM 2 model (None for SAM 1 models).
    edge_refinement: guided-filter settings that `SamPredictor.predict` applies to this model's
    masks by default (`segany.edge_refinement`), measured to sharpen its coarse outlines; None
    (every reference model): the masks are the thresholded logits, as the reference's.
    """

    name: str
    encoder: EncoderConfig
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    checkpoint_name: str | None = None
    url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    licence: str = "Apache-2.0"
    description: str = ""
    bundled: str | None = None  # weights file shipped in segany/weights/, loaded by default
    amg_defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    encoder_autocast: torch.dtype | None = None
    edge_refinement: EdgeRefinement | None = None
    # SAM 2 models (a `HieraConfig` encoder): their memory and video options
    tracking: TrackingConfig | None = None

    @property
    def image_size(self) -> int:
        return self.encoder.img_size

    @property
    def embedding_size(self) -> int:
        return self.encoder.embedding_size

    def at_image_size(self, image_size: int) -> ModelSpec:
        """This model for image_size px inputs, with the same weights (their shapes do not
        change): for training at a lower resolution first. Only encoders whose weights allow
        it (`PyramidEncoderConfig`); `ConfigError` otherwise."""
        if image_size == self.image_size:
            return self
        resize = getattr(self.encoder, "at_image_size", None)
        if resize is None:
            raise ConfigError(f"{self.name}'s encoder runs at {self.image_size} px only")
        try:
            encoder = resize(image_size)
        except ValueError as e:
            raise ConfigError(f"{self.name} at {image_size} px: {e}") from None
        return dataclasses.replace(self, encoder=encoder)

    @property
    def bundled_path(self) -> Path | None:
        """The shipped weights file of a model whose weights come with segany, else None."""
        if self.bundled is None:
            return None
        return Path(__file__).parent / "weights" / self.bundled

    @property
    def downloaded_path(self) -> Path | None:
        """Where `segany.download.download_checkpoint` keeps the official weights (whether or
        not they are there yet); None for a model without official weights."""
        name = self.checkpoint_name
        if not name and self.url:
            name = PurePosixPath(urlsplit(self.url).path).name
        return checkpoints_dir() / name if name else None
