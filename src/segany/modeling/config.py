"""Plain, frozen dataclass configs for every network part.

A `ModelSpec` (see `segany.registry`) groups one encoder config with one decoder config;
the builders in `segany.modeling.build` turn them into modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViTConfig:
    """SAM's MAE-style ViT image encoder (windowed + global attention, decomposed rel-pos).

    The encoder maps a (B, 3, img_size, img_size) normalised image to a
    (B, out_chans, img_size // patch_size, img_size // patch_size) embedding.
    """

    img_size: int = 1024
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    out_chans: int = 256
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)

    @property
    def embedding_size(self) -> int:
        return self.img_size // self.patch_size


@dataclass(frozen=True)
class TinyViTConfig:
    """MobileSAM's TinyViT image encoder (conv stages, then windowed attention stages).

    Maps a (B, 3, img_size, img_size) image to a (B, out_chans, img_size // 16, img_size // 16)
    embedding.
    """

    img_size: int = 1024
    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    out_chans: int = 256
    # MobileSAM keeps TinyViT's unused ImageNet classifier (norm_head, head) in its checkpoint;
    # we keep the same parameters so the official file loads strictly and unchanged.
    num_classes: int = 1000

    @property
    def embedding_size(self) -> int:
        return self.img_size // 16


@dataclass(frozen=True)
class ConvEncoderConfig:
    """segany's small convolutional encoder (see `segany.modeling.conv_encoder`).

    Maps a (B, 3, img_size, img_size) image to a (B, out_chans, img_size // stride,
    img_size // stride) embedding. dims: channels at stride 4 and 8; depths: residual blocks at
    each; dilations: cycled over the stride-8 blocks; global_blocks: global-attention blocks at
    the end of the stride-8 stage. stride 8 ends there; stride 4 upsamples that map and fuses it
    with the stride-4 features (`fuse_blocks` residual blocks), for masks with 4x the pixels.
    """

    img_size: int = 256
    dims: tuple[int, int] = (64, 128)
    depths: tuple[int, int] = (2, 4)
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    global_blocks: int = 1
    num_heads: int = 4
    mlp_ratio: float = 2.0
    out_chans: int = 128
    stride: int = 8
    fuse_blocks: int = 1

    def __post_init__(self) -> None:
        if self.stride not in (4, 8):
            raise ValueError(f"ConvEncoderConfig: stride must be 4 or 8; got {self.stride}")
        if self.img_size % 8:
            raise ValueError(f"ConvEncoderConfig: img_size {self.img_size} must be a multiple of 8")
        if self.dims[1] % self.num_heads:
            raise ValueError(f"ConvEncoderConfig: dims[1] {self.dims[1]} not divisible by heads")

    @property
    def embedding_size(self) -> int:
        return self.img_size // self.stride

    @property
    def context_size(self) -> int:
        """Side of the stride-8 map that the global-attention blocks (and pos_embed) cover."""
        return self.img_size // 8


@dataclass(frozen=True)
class DecoderConfig:
    """Prompt encoder + two-way-transformer mask decoder sizes (shared by all SAM variants)."""

    transformer_dim: int = 256
    depth: int = 2
    num_heads: int = 8
    mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    pe_scale: float = 1.0  # std of the prompt encoder's random positional frequencies
