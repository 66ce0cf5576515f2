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

from segany.modeling.common import (
    FreshGELU,
    LayerNorm2d,
    MLPBlock,
    window_partition,
    window_unpartition,
)
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


# Upper bound on the attention-bias chunk held at once; keeps the bias in cache-sized pieces
# instead of a (heads, 4096, 4096) tensor (805 MB for ViT-B's global blocks).
BIAS_CHUNK_BYTES = 64 * 2**20


def rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Softmax attention with decomposed relative positions (MViTv2) on an h x w token grid.

    q, k, v: (B, heads, h*w, head_dim). Returns (B, heads, h*w, head_dim).
    The bias q . Rh[qh, kh] + q . Rw[qw, kw] (computed from unscaled queries, as SAM) is built
    a few query rows at a time and passed to `scaled_dot_product_attention` as its additive
    mask, so it is never materialised whole and softmax and value product run fused.
    """
    b, heads, n, dim = q.shape
    h, w = size
    table_h = relative_position_table(h, h, rel_pos_h).transpose(1, 2)  # (h, D, kh)
    table_w = relative_position_table(w, w, rel_pos_w).transpose(1, 2)  # (w, D, kw)
    grid_q = q.reshape(b * heads, h, w, dim)
    # Row-major layouts so that a slice of query rows is one contiguous block.
    bias_h = torch.bmm(grid_q.transpose(0, 1).reshape(h, b * heads * w, dim), table_h)
    bias_h = bias_h.view(h, b * heads, w, h)  # (h, BH, w, kh)
    bias_w = torch.bmm(grid_q.permute(2, 0, 1, 3).reshape(w, b * heads * h, dim), table_w)
    bias_w = bias_w.view(w, b * heads, h, w).permute(1, 2, 0, 3)  # (BH, h, w, kw)
    bytes_per_row = b * heads * w * h * w * q.element_size()
    rows = max(1, min(h, BIAS_CHUNK_BYTES // bytes_per_row))
    # Without autograd, one buffer is reused by every chunk: fresh large allocations cost
    # page faults each time.
    needs_grad = torch.is_grad_enabled() and (bias_h.requires_grad or bias_w.requires_grad)
    buffer = None if needs_grad else q.new_empty((b * heads, rows, w, h, w))
    outputs = []
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        row_h = bias_h[r0:r1].transpose(0, 1)[..., None]  # (BH, rows, w, kh, 1)
        row_w = bias_w[:, r0:r1, :, None, :]  # (BH, rows, w, 1, kw)
        if buffer is None:
            bias = (row_h + row_w).reshape(b, heads, (r1 - r0) * w, h * w)
        else:
            bias = torch.add(row_h, row_w, out=buffer[:, : r1 - r0])
            bias = bias.view(b, heads, (r1 - r0) * w, h * w)  # (B, heads, rows*w, h*w)
        outputs.append(
            F.scaled_dot_product_attention(q[:, :, r0 * w : r1 * w], k, v, attn_mask=bias)
        )
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)


class Attention(nn.Module):
    """Multi-head self-attention with relative positions over a (B, H, W, C) token grid,
    globally or (with `window` > 0) within non-overlapping windows."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor, window: int = 0) -> torch.Tensor:
        b, h, w, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x)  # (B, H, W, 3C)
        if window > 0:
            # SAM pads the normalised tokens with zeros before this layer; a zero token's
            # qkv is exactly the bias, so padding the output with the bias is the same
            # and skips the padded tokens' matmul.
            qkv, padded = window_partition(qkv, window, fill=self.qkv.bias)
        n, gh, gw, _ = qkv.shape  # windows (or images), grid rows, grid columns
        qkv = qkv.view(n, gh * gw, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, gh*gw, head_dim)
        out = rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, (gh, gw))
        out = out.transpose(1, 2).reshape(n, gh, gw, c)
        if window > 0:
            out = window_unpartition(out, window, padded, (h, w))
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block; `window` > 0 attends within windows, 0 globally."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window: int, grid: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = (window, window) if window > 0 else (grid, grid)
        self.attn = Attention(dim, num_heads, size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), FreshGELU)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.norm1(x), self.window)
        # In-place residual adds into fresh layer outputs (no backward needs them) save a
        # (B, H, W, C) allocation each.
        x = y.add_(x)
        return self.mlp(self.norm2(x)).add_(x)


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
