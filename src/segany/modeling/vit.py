"""SAM's image encoder: an MAE-style ViT with windowed and global attention.

Attention uses decomposed relative positions (MViTv2, Li et al. 2022). Unlike the reference,
which materialises, adds and soft-maxes the (heads, N, N) bias in separate passes, the bias is
built once per block and handed to `scaled_dot_product_attention` as its additive mask, so the
softmax and the value product run fused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.common import LayerNorm2d, MLPBlock
from segany.modeling.config import ViTConfig


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resample a (L, head_dim) relative-position table to (length, head_dim)."""
    if rel_pos.shape[0] == length:
        return rel_pos
    resized = F.interpolate(rel_pos.t()[None], size=length, mode="linear")  # (1, D, length)
    return resized[0].t()


def relative_position_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Gather relative-position embeddings for every (query, key) pair along one axis.

    Returns (q_size, k_size, head_dim). Coordinates are scaled when q and k sizes differ.
    """
    rel_pos = resize_rel_pos(rel_pos, 2 * max(q_size, k_size) - 1)
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * k_scale
    offsets = (q_coords - k_coords) + (k_size - 1) * k_scale
    return rel_pos[offsets.long()]


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Additive attention bias from decomposed relative positions.

    q: (B, H*W, head_dim) unscaled queries of a H x W token grid (keys on the same grid).
    Returns (B, H*W, H*W): bias[b, (qh, qw), (kh, kw)] = q . Rh[qh, kh] + q . Rw[qw, kw].
    """
    h, w = size
    table_h = relative_position_table(h, h, rel_pos_h)  # (h, h, D)
    table_w = relative_position_table(w, w, rel_pos_w)  # (w, w, D)
    b, _, dim = q.shape
    grid_q = q.view(b, h, w, dim)
    bias_h = torch.einsum("bhwc,hkc->bhwk", grid_q, table_h)  # (B, h, w, kh)
    bias_w = torch.einsum("bhwc,wkc->bhwk", grid_q, table_w)  # (B, h, w, kw)
    bias = bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]  # (B, h, w, kh, kw)
    return bias.reshape(b, h * w, h * w)


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) token grid with relative positions."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).view(b, h * w, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        bias = decomposed_rel_pos_bias(
            q.reshape(b * heads, h * w, c // heads), self.rel_pos_h, self.rel_pos_w, (h, w)
        ).view(b, heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, heads, N, hd)
        out = out.transpose(1, 2).reshape(b, h, w, c)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split a (B, H, W, C) grid into (B * nW, window, window, C) windows, zero-padding.

    Returns the windows and the padded size (Hp, Wp).
    """
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    windows = x.transpose(2, 3).reshape(-1, window, window, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.transpose(2, 3).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


class Block(nn.Module):
    """Pre-norm transformer block; `window` > 0 attends within windows, 0 globally."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, window: int, grid: int
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = (window, window) if window > 0 else (grid, grid)
        self.attn = Attention(dim, num_heads, size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), nn.GELU)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            size = (x.shape[1], x.shape[2])
            x, padded = window_partition(x, self.window)
            x = self.attn(x)
            x = window_unpartition(x, self.window, padded, size)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, 3, H, W) -> (B, H/p, W/p, C)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """(B, 3, S, S) normalised, padded image -> (B, out_chans, S/16, S/16) embedding."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        grid = config.embedding_size
        self.patch_embed = PatchEmbed(config.patch_size, config.embed_dim)
        # MAE absolute positions, pretrained at this grid size.
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                config.embed_dim,
                config.num_heads,
                config.mlp_ratio,
                0 if i in config.global_attn_indexes else config.window_size,
                grid,
            )
            for i in range(config.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(config.embed_dim, config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed  # (B, grid, grid, C)
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
