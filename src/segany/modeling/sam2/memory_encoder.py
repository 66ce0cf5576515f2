"""SAM 2's memory encoder: fuses a frame's image embedding with its predicted mask into the
frame's spatial memory (a narrower feature map that later frames attend to).

The mask (image resolution) is brought down to the embedding grid by strided convolutions,
added to the projected image embedding, mixed by ConvNeXt blocks (Liu et al. 2022, "A ConvNet
for the 2020s") and projected to `mem_dim` channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from segany.modeling.common import LayerNorm2d
from segany.modeling.sam2.sine_position import SinePositionEncoding


class MaskDownsampler(nn.Module):
    """(B, 1, S, S) mask -> (B, embed_dim, S / total_stride, S / total_stride).

    Each step is conv (stride `stride`, channels x stride^2) -> LayerNorm2d -> GELU, so that the
    channel count grows with the pixels folded in; a 1x1 conv ends at `embed_dim`. The layers
    sit in one `encoder` Sequential, as the official keys `mask_downsampler.encoder.{i}` expect.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        steps = round(math.log(total_stride, stride))
        if stride**steps != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(steps):
            out = channels * stride**2
            layers += [
                nn.Conv2d(channels, out, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out),
                nn.GELU(),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block on (B, C, H, W): depthwise 7x7 conv -> LayerNorm2d -> pointwise MLP
    (C -> 4C -> C, GELU) scaled per channel by `gamma`, added to the input."""

    def __init__(self, dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))  # layer scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of CXBlocks (keys `fuser.layers.{i}`)."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """A frame's image embedding and mask -> its spatial memory and position encoding.

    State-dict keys are those of the official `memory_encoder.*`: mask_downsampler.encoder.*,
    pix_feat_proj, fuser.layers.*, out_proj.
    """

    def __init__(self, in_dim: int = 256, out_dim: int = 64, fuser_layers: int = 2) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownsampler(embed_dim=in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, fuser_layers)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1)
        self.position_encoding = SinePositionEncoding(out_dim)

    def forward(
        self, pix_feat: torch.Tensor, mask_for_memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pix_feat (B, in_dim, H, W): the frame's (memory-free) image embedding;
        mask_for_memory (B, 1, 16H, 16W): the mask already mapped to the memory's input scale
        (the tracker's scaled sigmoid of the logits, or its binarised mask; no sigmoid here).

        Returns (features, positions), both (B, out_dim, H, W).
        """
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask_for_memory)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)
