"""Turn a `ModelSpec` into a `Sam` module (a `Sam2` one for a SAM 2 spec)."""

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
from segany.modeling.sam2.mask_decoder import Sam2MaskDecoder, sam2_two_way_transformer
from segany.modeling.sam2.memory_attention import MemoryAttention
from segany.modeling.sam2.memory_encoder import MemoryEncoder
from segany.modeling.sam2.model import Sam2
from segany.modeling.sam2.prompt_encoder import Sam2PromptEncoder
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


def build_model(spec: ModelSpec) -> Sam | Sam2:
    """A randomly initialised `Sam` (or `Sam2`, for a `HieraConfig` encoder) laid out exactly
    as the official checkpoints."""
    if isinstance(spec.encoder, HieraConfig):
        return build_sam2_model(spec)
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


def build_sam2_model(spec: ModelSpec) -> Sam2:
    """SAM 2's networks for a spec with a `HieraConfig` encoder and a `TrackingConfig`; the
    prompt encoder and decoder sizes are SAM's (`spec.decoder`), as in every official build."""
    dec, tracking = spec.decoder, spec.tracking
    if tracking is None:
        raise TypeError(f"{spec.name}: a SAM 2 spec needs a TrackingConfig")
    dim, grid = dec.transformer_dim, spec.embedding_size
    return Sam2(
        image_encoder=build_image_encoder(spec.encoder),
        prompt_encoder=Sam2PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(spec.image_size, spec.image_size),
            mask_in_chans=dec.mask_in_chans,
            pe_scale=dec.pe_scale,
        ),
        mask_decoder=Sam2MaskDecoder(
            transformer=sam2_two_way_transformer(dec.depth, dim, dec.num_heads, dec.mlp_dim),
            transformer_dim=dim,
            num_multimask_outputs=dec.num_multimask_outputs,
            iou_head_depth=dec.iou_head_depth,
            iou_head_hidden_dim=dec.iou_head_hidden_dim,
            stability_delta=tracking.dynamic_multimask_stability_delta,
            stability_thresh=tracking.dynamic_multimask_stability_thresh,
        ),
        memory_attention=MemoryAttention(
            d_model=dim,
            mem_dim=tracking.mem_dim,
            num_layers=tracking.memory_attention_layers,
            dim_feedforward=tracking.memory_attention_ff,
            rope_theta=tracking.rope_theta,
        ),
        memory_encoder=MemoryEncoder(
            in_dim=dim, out_dim=tracking.mem_dim, fuser_layers=tracking.fuser_layers
        ),
        tracking=tracking,
        pixel_mean=spec.pixel_mean,
        pixel_std=spec.pixel_std,
    )
