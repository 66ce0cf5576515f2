"""The networks only: image encoders, prompt encoder, mask decoder, and `Sam` composing them."""

from segany.modeling.config import DecoderConfig, TinyViTConfig, ViTConfig
from segany.modeling.sam import Sam

__all__ = ["DecoderConfig", "Sam", "TinyViTConfig", "ViTConfig"]
