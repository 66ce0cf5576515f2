"""segany's second small image encoder: convolutions at strides 4, 8 and 16, global attention
over the stride-16 tokens, and a top-down fusion back to a stride-8 embedding.

Why this shape: at 512 px the first encoder's global attention runs over 64 x 64 = 4,096
tokens (105 ms on a 2-core CPU); over the stride-16 grid it sees 1,024 tokens, and the
lateral fusion (a feature pyramid's top-down step, Lin et al. 2017) brings the stride-8 detail
back, so the decoder's 4x upscaling gives one logit per 2 x 2 input pixels. Measured 50 ms at
512 px with the default config (training/segany-tiny/NOTES.md).

Layout (S the input size):

    stem      conv 3x3 /2 -> conv 3x3 /2                            (B, C1, S/4, S/4)
    stage 1   residual blocks at stride 4
    down 1    conv 3x3 /2                                           (B, C2, S/8, S/8)
    stage 2   residual blocks at stride 8, dilations cycling
    down 2    conv 3x3 /2                                           (B, C3, S/16, S/16)
    stage 3   residual blocks at stride 16, then global attention with learned positions
    fuse      upsample x2 + conv 1x1 of stage 2, a residual block   (B, C3, S/8, S/8)
    neck      conv 1x1 -> LayerNorm2d -> conv 3x3 -> LayerNorm2d    (B, out_chans, S/8, S/8)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.config import PyramidEncoderConfig
from segany.modeling.conv_encoder import (
    ConvNormAct,
    GlobalBlock,
    ResidualBlock,
    check_image_batch,
    sam_neck,
)


def _stage(dim: int, depth: int, dilations: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(dim, dilations[i % len(dilations)]) for i in range(depth)))


class PyramidEncoder(nn.Module):
    """(B, 3, S, S) normalised, padded image -> (B, out_chans, S / 8, S / 8) embedding,
    S = `config.img_size` (the learned positions fix the input size)."""

    def __init__(self, config: PyramidEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        c1, c2, c3 = config.dims
        self.stem = nn.Sequential(
            ConvNormAct(3, c1 // 2, stride=2), ConvNormAct(c1 // 2, c1, stride=2)
        )
        self.stage1 = _stage(c1, config.depths[0], (1,))
        self.down1 = ConvNormAct(c1, c2, stride=2)
        self.stage2 = _stage(c2, config.depths[1], config.dilations)
        self.down2 = ConvNormAct(c2, c3, stride=2)
        self.stage3 = _stage(c3, config.depths[2], config.dilations)
        grid = config.position_grid
        self.pos_embed = nn.Parameter(torch.zeros(1, c3, grid, grid))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.context = nn.Sequential(
            *(
                GlobalBlock(c3, config.num_heads, config.mlp_ratio)
                for _ in range(config.global_blocks)
            )
        )
        self.lateral = ConvNormAct(c2, c3, 1, act=False)
        self.fuse = ResidualBlock(c3, 1)
        self.neck = sam_neck(c3, config.out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, out_chans, S / 8, S / 8), a contiguous tensor."""
        check_image_batch(x, self.config.img_size, "PyramidEncoder")
        x = self.stage1(self.stem(x.contiguous(memory_format=torch.channels_last)))
        middle = self.stage2(self.down1(x))  # (B, C2, S/8, S/8)
        coarse = self.context(
            self.stage3(self.down2(middle)) + self._positions()
        )  # (B, C3, S/16, S/16)
        up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.neck(self.fuse(up + self.lateral(middle))).contiguous()

    def _positions(self) -> torch.Tensor:
        """(1, C3, S/16, S/16) learned positions, resized when learned on another grid."""
        grid = self.config.context_size
        if self.pos_embed.shape[-1] == grid:
            return self.pos_embed
        return F.interpolate(
            self.pos_embed, size=(grid, grid), mode="bilinear", align_corners=False
        )
