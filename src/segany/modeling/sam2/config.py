"""Configs of SAM 2's networks: `HieraConfig` (the image encoder: Hiera trunk + FPN neck) and
`TrackingConfig` (the memory and video options in which SAM 2.0 and 2.1 differ)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

Fingerprint = dict[str, Any]


def _count_indices(state_dict: Mapping[str, Any], prefix: str) -> int:
    heads = {key[len(prefix) :].split(".", 1)[0] for key in state_dict if key.startswith(prefix)}
    return sum(1 for head in heads if head.isdigit())


@dataclass(frozen=True)
class HieraConfig:
    """SAM 2's image encoder: a Hiera trunk (4 stages, each halving the grid and doubling the
    width, windowed attention with a few global blocks) and an FPN neck to `d_model` channels.

    Maps a (B, 3, img_size, img_size) normalised image to three levels (after dropping the
    coarsest, `scalp`): (B, d_model, S/4, S/4), (B, d_model, S/8, S/8) and the image embedding
    (B, d_model, S/16, S/16), with a sine position encoding of each.

    embed_dim, num_heads: width and heads of stage 1 (x2 at every stage); stages: blocks per
    stage; global_att_blocks: indices (over all blocks) of global-attention blocks;
    window_spec: attention window per stage; window_pos_embed_bkg_spatial_size: grid of the
    background position embedding, interpolated to the stage-1 grid; fpn_top_down_levels: the
    neck levels (0 = finest) that add the upsampled coarser level.
    """

    img_size: int = 1024
    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    d_model: int = 256
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    scalp: int = 1

    def __post_init__(self) -> None:
        if self.img_size % 32:
            raise ValueError(f"HieraConfig: img_size {self.img_size} is not a multiple of 32")

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Width of each stage, coarsest first (the neck's `convs` order)."""
        widths = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(widths))

    @property
    def embedding_size(self) -> int:
        """Side of the image embedding (stride 16)."""
        return self.img_size // 16

    def at_image_size(self, image_size: int) -> HieraConfig:
        """The same encoder for image_size px inputs (a multiple of 32): its weights do not
        depend on the input size. `ValueError` otherwise."""
        return replace(self, img_size=image_size)

    def fingerprint(self) -> Fingerprint:
        return {
            "encoder": "hiera",
            "width": self.embed_dim,
            "depth": tuple(self.stages),
            "neck": (self.d_model, self.backbone_channel_list[0]),
        }

    @staticmethod
    def read_fingerprint(sd: Mapping[str, Any]) -> Fingerprint | None:
        patch = sd.get("image_encoder.trunk.patch_embed.proj.weight")  # (C, 3, 7, 7)
        if patch is None or patch.dim() != 4:
            return None
        facts: Fingerprint = {"encoder": "hiera", "width": patch.shape[0]}
        n_blocks = _count_indices(sd, "image_encoder.trunk.blocks.")
        # A block that changes width has a `proj` (dim -> dim_out): the stage boundaries.
        starts = [i for i in range(n_blocks) if f"image_encoder.trunk.blocks.{i}.proj.weight" in sd]
        bounds = [0, *starts, n_blocks]
        facts["depth"] = tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))
        neck = sd.get("image_encoder.neck.convs.0.conv.weight")  # (d_model, C_last, 1, 1)
        if neck is not None and neck.dim() == 4:
            facts["neck"] = (neck.shape[0], neck.shape[1])
        return facts


@dataclass(frozen=True)
class TrackingConfig:
    """The memory and video options of a SAM 2 model (the reference's `SAM2Base` arguments
    that the official configs set). SAM 2.1 adds the spatial no-object embedding and the
    projected, signed temporal encoding of object pointers."""

    version: str = "2.1"
    num_maskmem: int = 7
    mem_dim: int = 64
    memory_attention_layers: int = 4
    memory_attention_ff: int = 2048
    rope_theta: float = 10000.0
    fuser_layers: int = 2
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    max_obj_ptrs_in_encoder: int = 16
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    # the image predictor's and the video predictor's fallback to multimask when one mask is
    # unstable (the reference's `build_sam2(apply_postprocessing=True)`)
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # SAM 2.1 only
    no_obj_embed_spatial: bool = True
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True

    @classmethod
    def for_version(cls, version: str) -> TrackingConfig:
        if version == "2.1":
            return cls()
        if version == "2.0":
            return cls(
                version="2.0",
                no_obj_embed_spatial=False,
                add_tpos_enc_to_obj_ptrs=False,
                proj_tpos_enc_in_obj_ptrs=False,
                use_signed_tpos_enc_to_obj_ptrs=False,
            )
        raise ValueError(f"unknown SAM 2 version {version!r}; expected '2.0' or '2.1'")
