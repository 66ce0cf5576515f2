"""The fixed sine/cosine position encoding of a feature grid (DETR style), as SAM 2's FPN neck
and memory encoder use it."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinePositionEncoding(nn.Module):
    """(B, C, H, W) features -> (B, num_pos_feats, H, W) encoding of their grid positions.

    The first half of the channels encodes the row, the second the column; each is
    sin/cos-interleaved over `num_pos_feats / 2` geometric frequencies of the position
    normalised to (0, 2*pi]. Only the shape, device and dtype of the input are used. Results
    are cached per (H, W, device).
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self._cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        half = self.num_pos_feats // 2
        eps = 1e-6
        rows = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        cols = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        rows = rows / (h + eps) * (2 * math.pi)
        cols = cols / (w + eps) * (2 * math.pi)
        steps = torch.arange(half, dtype=torch.float32, device=device)
        freqs = self.temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)

        def encode(positions: torch.Tensor) -> torch.Tensor:  # (N,) -> (N, half)
            angles = positions[:, None] / freqs
            return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

        row_code = encode(rows)[:, None, :].expand(h, w, half)
        col_code = encode(cols)[None, :, :].expand(h, w, half)
        grid = torch.cat((row_code, col_code), dim=2).permute(2, 0, 1).contiguous()
        self._cache[key] = grid
        return grid

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        grid = self._grid(h, w, features.device).to(features.dtype)
        return grid[None].expand(b, -1, -1, -1)
