"""Plain, frozen dataclass configs for every network part.

A `ModelSpec` (see `segany.registry`) groups one encoder config with one decoder config;
the builders in `segany.modeling.build` turn them into modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segany.modeling.sam2.config import HieraConfig

# A fingerprint is the set of shape facts a checkpoint shows without being loaded: encoder kind,
# widths, block counts, grid. Each encoder config gives its own (`fingerprint`) and reads it
# off an official-layout state dict (`read_fingerprint`), so `segany.checkpoints` recognises a
# new encoder kind as soon as its config class is listed in ENCODER_CONFIGS.
Fingerprint = dict[str, Any]


def count_indices(state_dict: Mapping[str, Any], prefix: str) -> int:
    """Number of distinct integers N among keys `prefix + "N." + ...`."""
    indices = set()
    for key in state_dict:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                indices.add(int(head))
    return len(indices)


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

    def fingerprint(self) -> Fingerprint:
        return {
            "encoder": "vit",
            "width": self.embed_dim,
            "patch_size": self.patch_size,
            "depth": self.depth,
            "grid": self.img_size // self.patch_size,
            "neck": (self.out_chans, self.embed_dim),
        }

    @staticmethod
    def read_fingerprint(sd: Mapping[str, Any]) -> Fingerprint | None:
        patch = sd.get("image_encoder.patch_embed.proj.weight")  # (C, 3, P, P)
        if patch is None or patch.dim() != 4:
            return None
        facts: Fingerprint = {"encoder": "vit", "width": patch.shape[0]}
        facts["patch_size"] = patch.shape[-1]
        facts["depth"] = count_indices(sd, "image_encoder.blocks.")
        pos = sd.get("image_encoder.pos_embed")  # (1, grid, grid, C)
        if pos is not None and pos.dim() == 4:
            facts["grid"] = pos.shape[1]
        return facts


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

    def fingerprint(self) -> Fingerprint:
        return {
            "encoder": "tiny_vit",
            "width": self.embed_dims[0],
            "depth": tuple(self.depths),
            "neck": (self.out_chans, self.embed_dims[-1]),
        }

    @staticmethod
    def read_fingerprint(sd: Mapping[str, Any]) -> Fingerprint | None:
        # TinyViT's stem is conv(3 -> C/2), GELU, conv(C/2 -> C); MobileSAM keys it seq.0 / seq.2.
        stem = sd.get("image_encoder.patch_embed.seq.2.c.weight")  # (C, C/2, 3, 3)
        if stem is None and "image_encoder.patch_embed.seq.0.c.weight" not in sd:
            return None
        facts: Fingerprint = {"encoder": "tiny_vit"}
        if stem is not None:
            facts["width"] = stem.shape[0]
        n_layers = count_indices(sd, "image_encoder.layers.")
        facts["depth"] = tuple(
            count_indices(sd, f"image_encoder.layers.{i}.blocks.") for i in range(n_layers)
        )
        return facts


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

    def fingerprint(self) -> Fingerprint:
        return {
            "encoder": "conv",
            "width": self.dims[0],
            "depth": tuple(self.depths),
            "grid": self.context_size,
            "stride": self.stride,
            "neck": (self.out_chans, self.dims[-1]),
        }

    @staticmethod
    def read_fingerprint(sd: Mapping[str, Any]) -> Fingerprint | None:
        stem = sd.get("image_encoder.stem.1.0.weight")  # (C1, C1/2, 3, 3)
        if stem is None:
            return None
        facts: Fingerprint = {"encoder": "conv", "width": stem.shape[0]}
        facts["depth"] = (
            count_indices(sd, "image_encoder.stage1."),
            count_indices(sd, "image_encoder.stage2."),
        )
        facts["stride"] = 4 if "image_encoder.lateral.0.weight" in sd else 8
        pos = sd.get("image_encoder.pos_embed")  # (1, C2, grid, grid), the stride-8 grid
        if pos is not None and pos.dim() == 4:
            facts["grid"] = pos.shape[-1]
        return facts


@dataclass(frozen=True)
class PyramidEncoderConfig:
    """segany's second small encoder (see `segany.modeling.pyramid_encoder`): convolutions at
    strides 4, 8 and 16, global attention over the stride-16 tokens, a top-down fusion back
    to stride 8. For 512 px inputs within a CPU budget: global attention over 32 x 32 tokens
    instead of 64 x 64.

    Maps a (B, 3, img_size, img_size) image to a (B, out_chans, img_size // 8, img_size // 8)
    embedding. dims: channels at strides 4, 8, 16; depths: residual blocks at each;
    dilations: cycled over each stage's blocks; global_blocks: attention blocks at stride 16;
    pos_grid: side of the learned position grid (0: the stride-16 grid of img_size); a
    different side is resized to the stride-16 grid on the fly, so weights learned at one
    input size run at another (training at a lower resolution first, see `at_image_size`).
    """

    img_size: int = 512
    dims: tuple[int, int, int] = (48, 96, 192)
    depths: tuple[int, int, int] = (1, 3, 2)
    dilations: tuple[int, ...] = (1, 2, 4)
    global_blocks: int = 2
    num_heads: int = 6
    mlp_ratio: float = 2.0
    out_chans: int = 128
    pos_grid: int = 0

    def __post_init__(self) -> None:
        if self.pos_grid < 0:
            raise ValueError(f"PyramidEncoderConfig: pos_grid {self.pos_grid} is negative")
        if self.img_size % 16:
            raise ValueError(f"PyramidEncoderConfig: img_size {self.img_size} not a multiple of 16")
        if self.dims[2] % self.num_heads:
            raise ValueError(f"PyramidEncoderConfig: dims[2] {self.dims[2]} not divisible by heads")

    @property
    def embedding_size(self) -> int:
        return self.img_size // 8

    @property
    def context_size(self) -> int:
        """Side of the stride-16 map that the global-attention blocks cover."""
        return self.img_size // 16

    @property
    def position_grid(self) -> int:
        """Side of the learned position grid (pos_embed's last two dimensions)."""
        return self.pos_grid or self.context_size

    def at_image_size(self, img_size: int) -> PyramidEncoderConfig:
        """The same encoder, same weights (its position grid kept), for img_size px inputs."""
        return dataclasses.replace(self, img_size=img_size, pos_grid=self.position_grid)

    def fingerprint(self) -> Fingerprint:
        return {
            "encoder": "pyramid",
            "width": self.dims[0],
            "depth": tuple(self.depths),
            "grid": self.position_grid,
            "neck": (self.out_chans, self.dims[2]),
        }

    @staticmethod
    def read_fingerprint(sd: Mapping[str, Any]) -> Fingerprint | None:
        stem = sd.get("image_encoder.stem.1.0.weight")  # (C1, C1/2, 3, 3)
        if stem is None or "image_encoder.stage3.0.spatial.0.weight" not in sd:
            return None
        facts: Fingerprint = {"encoder": "pyramid", "width": stem.shape[0]}
        facts["depth"] = tuple(count_indices(sd, f"image_encoder.stage{i}.") for i in (1, 2, 3))
        pos = sd.get("image_encoder.pos_embed")  # (1, C3, grid, grid), the stride-16 grid
        if pos is not None and pos.dim() == 4:
            facts["grid"] = pos.shape[-1]
        return facts


EncoderConfig = ViTConfig | TinyViTConfig | ConvEncoderConfig | PyramidEncoderConfig | HieraConfig
# Every encoder kind, in the order checkpoints are matched against them.
# The pyramid encoder is tried before the conv encoder: both have a conv stem, only the
# pyramid has a stride-16 stage.
ENCODER_CONFIGS: tuple[type[EncoderConfig], ...] = (
    ViTConfig,
    PyramidEncoderConfig,
    ConvEncoderConfig,
    TinyViTConfig,
    HieraConfig,
)


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
