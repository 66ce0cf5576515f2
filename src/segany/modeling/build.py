"""Turn a `ModelSpec` into a `Sam` module."""

from __future__ import annotations

from torch import nn

from segany.model_spec import ModelSpec
from segany.modeling.config import (
    ConvEncoderConfig,
    EncoderConfig,
    PyramidEncoderConfig,
    TinyViTConfig,
    ViTConfig,
)
from segany.modeling.mask_decoder import MaskDecoder
from segany.modeling.prompt_encoder import PromptEncoder
from segany.modeling.sam import Sam
from segany.modeling.sam2.config import HieraConfig
from segany.modeling.two_way_transformer import TwoWayTransformer


def build_image_encoder(config: EncoderConfig) -> nn.Module:
    if isinstance(config, ViTConfig):
        from segany.modeling.vit import ImageEncoderViT

        return ImageEncoderViT(config)
    if isinstance(config, TinyViTConfig):
        from segany.modeling.tiny_vit import TinyViT

        return TinyViT(config)
    if isinstance(config, ConvEncoderConfig):
        from segany.modeling.conv_encoder import ConvEncoder

        return ConvEncoder(config)
    if isinstance(config, PyramidEncoderConfig):
        from segany.modeling.pyramid_encoder import PyramidEncoder

        return PyramidEncoder(config)
    if isinstance(config, HieraConfig):
        from segany.modeling.sam2.image_encoder import Sam2ImageEncoder

        return Sam2ImageEncoder(config)
    raise TypeError(f"no image encoder for config type {type(config).__name__}")


def build_model(spec: ModelSpec) -> Sam:
    """A randomly initialised `Sam` laid out exactly as the official checkpoints."""
    dec = spec.decoder
    grid = spec.embedding_size
    return Sam(
        image_encoder=build_image_encoder(spec.encoder),
        prompt_encoder=PromptEncoder(
            embed_dim=dec.transformer_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(spec.image_size, spec.image_size),
            mask_in_chans=dec.mask_in_chans,
            pe_scale=dec.pe_scale,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=dec.transformer_dim,
            transformer=TwoWayTransformer(
                depth=dec.depth,
                embedding_dim=dec.transformer_dim,
                num_heads=dec.num_heads,
                mlp_dim=dec.mlp_dim,
                attention_downsample_rate=dec.attention_downsample_rate,
            ),
            num_multimask_outputs=dec.num_multimask_outputs,
            iou_head_depth=dec.iou_head_depth,
            iou_head_hidden_dim=dec.iou_head_hidden_dim,
        ),
        pixel_mean=spec.pixel_mean,
        pixel_std=spec.pixel_std,
    )
