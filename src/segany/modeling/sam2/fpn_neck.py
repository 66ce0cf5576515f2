"""SAM 2's FPN neck: 1x1 lateral convolutions bring every trunk stage to `d_model` channels;
chosen levels add the nearest-neighbour 2x upsampling of the next coarser output (top-down
fusion, Lin et al., 2017, without output convolutions), and each output gets a sine position
encoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.sam2.sine_position import SinePositionEncoding


class Lateral(nn.Module):
    """A 1x1 convolution held as `conv` (the reference's `convs.N.conv` keys), applied to a
    (B, H, W, C) grid as the matrix product it is: -> (B, H, W, d_model)."""

    def __init__(self, dim: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, d_model, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.conv.weight.flatten(1), self.conv.bias)


def upsample2x_add(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """fine (B, 2h, 2w, C) += nearest 2x upsampling of coarse (B, h, w, C), in place; the
    reference's `F.interpolate(scale_factor=2, mode="nearest")` without the upsampled copy.
    The sum is float32, as the reference's (it upsamples in float32)."""
    if fine.dtype != torch.float32:
        fine = fine.to(torch.float32)
    b, h2, w2, c = fine.shape
    cells = fine.view(b, h2 // 2, 2, w2 // 2, 2, c)  # (B, h, 2, w, 2, C)
    cells.add_(coarse.to(torch.float32)[:, :, None, :, None, :])
    return fine


class FpnNeck(nn.Module):
    """Trunk grids (B, H_i, W_i, C_i), finest first -> (features, positions): two lists of
    (B, d_model, H_i, W_i) maps, finest first, keeping the first len - `scalp` levels.

    `channels` lists the trunk widths coarsest first (the order of `convs`, as the reference).
    Level i (0 = finest) adds the upsampled level i + 1 output when i is in `top_down_levels`.
    The feature maps are channels-last in memory (like the reference's), the positions are
    broadcast views of one cached grid.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        d_model: int,
        top_down_levels: tuple[int, ...],
        scalp: int,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(Lateral(dim, d_model) for dim in channels)
        self.top_down_levels = tuple(top_down_levels)
        self.scalp = scalp
        self.position_encoding = SinePositionEncoding(d_model)

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"FpnNeck: expected {n} trunk levels, got {len(xs)}")
        outs: list[torch.Tensor] = [xs[0]] * n
        previous = None
        for i in range(n - 1, -1, -1):  # coarsest first
            lateral = self.convs[n - 1 - i](xs[i])  # (B, H_i, W_i, d_model)
            if i in self.top_down_levels and previous is not None:
                lateral = upsample2x_add(lateral, previous)
            outs[i] = previous = lateral
        kept = [out.permute(0, 3, 1, 2) for out in outs[: n - self.scalp]]  # (B, d, H, W)
        positions = [self.position_encoding(f) for f in kept]
        return kept, positions
