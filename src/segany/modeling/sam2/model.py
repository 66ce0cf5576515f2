"""`Sam2` holds SAM 2's networks and learned embeddings under the official checkpoint keys, with
its image pre- and post-processing and the per-image features the image predictor decodes from.
The video logic (memory bank, tracking) lives in `segany.modeling.sam2.tracking`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.common import MLP
from segany.modeling.model_base import ModelBase
from segany.modeling.sam2.config import TrackingConfig
from segany.modeling.sam2.mask_decoder import Sam2MaskDecoder
from segany.modeling.sam2.prompt_encoder import Sam2PromptEncoder

# Names of `Sam2.image_features`' entries, finest first after the embedding.
IMAGE_EMBED = "image_embed"
HIGH_RES_FEATS = ("high_res_feat_s0", "high_res_feat_s1")


class Sam2(ModelBase, nn.Module):
    """SAM 2 / SAM 2.1 (Ravi et al., 2024).

    Frames: the *original* frame is the user's image (H, W); the *input* frame is that image
    stretched (not padded) to (image_size, image_size). Point and box prompts are in input-frame
    pixels; low-resolution logits cover the whole input square.

    Submodules and parameters are named as in Meta's checkpoints (`{"model": state_dict}`):
    image_encoder, sam_prompt_encoder, sam_mask_decoder, memory_attention, memory_encoder,
    maskmem_tpos_enc (num_maskmem, 1, 1, mem_dim), no_mem_embed and no_mem_pos_enc (1, 1, C),
    no_obj_ptr (1, C), no_obj_embed_spatial (1, mem_dim; SAM 2.1), obj_ptr_proj (3-layer MLP),
    obj_ptr_tpos_proj (C -> mem_dim; SAM 2.1) and mask_downsample (1 -> 1 conv, kernel 4,
    stride 4).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: Sam2PromptEncoder,
        mask_decoder: Sam2MaskDecoder,
        memory_attention: nn.Module,
        memory_encoder: nn.Module,
        tracking: TrackingConfig,
        pixel_mean: tuple[float, float, float],
        pixel_std: tuple[float, float, float],
    ) -> None:
        """pixel_mean, pixel_std: per-channel statistics in 0..255 units."""
        super().__init__()
        self.image_encoder = image_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self._tracking = tracking
        hidden, mem_dim = prompt_encoder.embed_dim, tracking.mem_dim
        self.maskmem_tpos_enc = _trunc_normal(tracking.num_maskmem, 1, 1, mem_dim)
        # Added to a frame's embedding when there is no memory: every image, first frames.
        self.no_mem_embed = _trunc_normal(1, 1, hidden)
        self.no_mem_pos_enc = _trunc_normal(1, 1, hidden)
        self.no_obj_ptr = _trunc_normal(1, hidden)
        if tracking.no_obj_embed_spatial:
            self.no_obj_embed_spatial = _trunc_normal(1, mem_dim)
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        if tracking.proj_tpos_enc_in_obj_ptrs:
            self.obj_ptr_tpos_proj: nn.Module = nn.Linear(hidden, mem_dim)
        else:
            self.obj_ptr_tpos_proj = nn.Identity()
        # Brings a full-resolution mask prompt to the low-resolution logit grid.
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        # ToTensor's division by 255 first, then the statistics in 0..1 units, as the reference.
        mean = torch.tensor(pixel_mean, dtype=torch.float64) / 255
        std = torch.tensor(pixel_std, dtype=torch.float64) / 255
        self.register_buffer("pixel_mean", mean.float().view(-1, 1, 1), False)
        self.register_buffer("pixel_std", std.float().view(-1, 1, 1), False)

    # ---- properties ------------------------------------------------------------------------

    @property
    def tracking(self) -> TrackingConfig:
        """The memory and video options (SAM 2.0 or 2.1)."""
        return self._tracking

    @property
    def prompt_encoder(self) -> Sam2PromptEncoder:
        """`sam_prompt_encoder`, under SAM's name."""
        return self.sam_prompt_encoder

    @property
    def mask_decoder(self) -> Sam2MaskDecoder:
        """`sam_mask_decoder`, under SAM's name."""
        return self.sam_mask_decoder

    def forward(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "Sam2 has no forward: use segany.SamPredictor(model) for images, "
            "segany.video for videos"
        )

    # ---- images ----------------------------------------------------------------------------

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB 0..255 (any size, uint8 or float) -> (B, 3, S, S) normalised.

        As the reference: to 0..1, stretched to S x S by antialiased bilinear resizing (none
        when already S x S), then normalised.
        """
        x = images.to(torch.float32) / 255
        size = self.image_size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.pixel_mean) / self.pixel_std

    def backbone_features(
        self, images: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The encoder's 3 levels for (B, 3, S, S) normalised images, finest first, with
        conv_s0 / conv_s1 applied to the two finest (the reference's `forward_image`):
        features (B, C/8, S/4, S/4), (B, C/4, S/8, S/8), (B, C, S/16, S/16), and their sine
        position encodings (B, C, ...) at the same grids."""
        out = self.image_encoder(images)
        s0, s1, embed = out.features
        decoder = self.sam_mask_decoder
        return [decoder.conv_s0(s0), decoder.conv_s1(s1), embed], list(out.positions)

    def image_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the image predictor decodes from, for (B, 3, S, S) normalised images:
        "image_embed" (B, C, S/16, S/16), the stride-16 level plus `no_mem_embed` (an image
        is a frame without memory); "high_res_feat_s0" (B, C/8, S/4, S/4) and
        "high_res_feat_s1" (B, C/4, S/8, S/8)."""
        (s0, s1, embed), _ = self.backbone_features(images)
        embed = embed + self.no_mem_embed.view(1, -1, 1, 1)
        return {IMAGE_EMBED: embed, HIGH_RES_FEATS[0]: s0, HIGH_RES_FEATS[1]: s1}

    def image_feature_shapes(self) -> dict[str, tuple[int, int, int]]:
        """(C, h, w) of each `image_features` entry."""
        size, dim = self.image_size, self.sam_prompt_encoder.embed_dim
        return {
            IMAGE_EMBED: (dim, size // 16, size // 16),
            HIGH_RES_FEATS[0]: (dim // 8, size // 4, size // 4),
            HIGH_RES_FEATS[1]: (dim // 4, size // 8, size // 8),
        }

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """Low-resolution logits (B, C, S/4, S/4), which cover the whole stretched input, to
        the original image: (B, C, H, W) by one bilinear resize, as the reference.
        `input_size` is always (S, S) here (kept for SAM's signature)."""
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)


def _trunc_normal(*shape: int) -> nn.Parameter:
    param = nn.Parameter(torch.zeros(shape))
    nn.init.trunc_normal_(param, std=0.02)
    return param
