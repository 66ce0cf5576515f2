"""Hiera (Ryali et al., 2023), the trunk of SAM 2's image encoder, as SAM 2 configures it: a
7x7 stride-4 patch embedding, a background position embedding interpolated to the grid plus a
tiled per-window one ("Window Attention is Bugged", Bolya et al., 2023), and four stages of
pre-norm blocks with windowed attention (a few blocks attend globally). The first block of
each later stage widens the tokens and, with q-pooling, halves the grid by max-pooling its
queries and its shortcut.

Tokens stay in (B, H, W, C) grids throughout. Unlike the reference, which pads the normalised
tokens before the qkv projection and projects the padded windows back, padding is applied to
the qkv output (a zero token's qkv is exactly the bias) and dropped before the output
projection, so neither linear layer spends work on padding; where no padding is needed the
input is cut into windows rather than qkv (a third of the bytes). The interpolated position
embedding is cached per grid size, and an inference pass reuses one buffer for every block's
qkv and MLP hidden layer (`Scratch`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.common import gelu_fresh, window_partition, window_unpartition
from segany.modeling.sam2.config import HieraConfig


def pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 2, of a (N, H, W, C) grid of any strides -> (N, H/2, W/2, C).

    H and W are even wherever Hiera pools (the image side is a multiple of 32).
    """
    rows = torch.maximum(x[:, 0::2], x[:, 1::2])  # (N, H/2, W, C)
    return torch.maximum(rows[:, :, 0::2], rows[:, :, 1::2])


class Scratch:
    """One inference pass's reusable buffer for the blocks' widest intermediates (qkv and the
    MLP's hidden layer), plus one for a widening block's projected shortcut.

    At 1024 px these reach 150 MB. Allocated per block, each would be fresh memory from the
    system, first touched at a page fault per 4 KiB: in stage 1 on a 2-core VM, about a third
    of the cost of the matrix product that fills it. Made per forward call, so nothing is
    kept between calls and concurrent calls share nothing.
    """

    def __init__(self, wide_numel: int) -> None:
        self.wide_numel = wide_numel
        self._buffers: dict[str, torch.Tensor] = {}

    def linear(self, slot: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """layer(x) of (..., in) tokens -> (..., out), written into the buffer `slot`."""
        shape = (*x.shape[:-1], layer.out_features)
        numel = math.prod(shape)
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < numel:
            size = max(numel, self.wide_numel) if slot == "wide" else numel
            buffer = self._buffers[slot] = x.new_empty(size)
        out = buffer[:numel].view(-1, layer.out_features)
        torch.addmm(layer.bias, x.reshape(-1, x.shape[-1]), layer.weight.t(), out=out)
        return out.view(shape)


def _linear(layer: nn.Linear, x: torch.Tensor, scratch: Scratch | None, slot: str) -> torch.Tensor:
    return layer(x) if scratch is None else scratch.linear(slot, layer, x)


class GeluMLP(nn.Module):
    """Linear -> exact GELU -> linear, laid out as the reference's `MLP` (`layers.0/1`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        hidden = _linear(self.layers[0], x, scratch, "wide")
        return self.layers[1](gelu_fresh(hidden))


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention over a (B, H, W, dim) grid -> (B, H', W', dim_out), within
    `window` x `window` windows (0: globally). With `pool`, the queries are max-pooled 2x2
    inside each window, so the output grid is (H/2, W/2)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, pool: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pool = pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor, window: int, scratch: Scratch | None = None) -> torch.Tensor:
        b, h, w, _ = x.shape
        heads = self.num_heads
        if window > 0 and h % window == 0 and w % window == 0:
            # Windows of the input: a third (a sixth when widening) of the bytes of qkv's.
            x, padded = window_partition(x, window)
            qkv = _linear(self.qkv, x, scratch, "wide")  # (n, window, window, 3 * dim_out)
        elif window > 0:
            # The reference pads the normalised tokens with zeros before this layer; padding
            # the output with the bias is the same and skips the padded tokens' matmul.
            qkv = _linear(self.qkv, x, scratch, "wide")
            qkv, padded = window_partition(qkv, window, fill=self.qkv.bias)
        else:
            qkv = _linear(self.qkv, x, scratch, "wide")  # (B, H, W, 3 * dim_out)
        n, gh, gw, c3 = qkv.shape  # windows (or images), grid rows, grid columns
        dim_out = c3 // 3
        q, k, v = qkv.view(n, gh, gw, 3, heads, dim_out // heads).unbind(3)  # (n, gh, gw, heads, d)
        k = k.flatten(1, 2).transpose(1, 2)  # (n, heads, gh*gw, d)
        v = v.flatten(1, 2).transpose(1, 2)
        if self.pool:
            # Windows hold whole 2x2 cells (even windows on an even grid), so pooling inside
            # each window equals the reference's pooling of the window batch.
            q = pool2x2(q.flatten(3))  # (n, gh/2, gw/2, heads * d)
            gh, gw = gh // 2, gw // 2
            q = q.view(n, gh * gw, heads, -1)
        else:
            q = q.flatten(1, 2)  # (n, gh*gw, heads, d)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k, v)  # (n, heads, gh*gw, d)
        out = out.transpose(1, 2).reshape(n, gh, gw, dim_out)
        if window > 0:
            stride = 2 if self.pool else 1
            win = window // stride
            grid = (padded[0] // stride, padded[1] // stride)
            out = window_unpartition(out, win, grid, (h // stride, w // stride))
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block on a (B, H, W, dim) grid -> (B, H', W', dim_out).

    A block that widens (dim != dim_out) projects its normalised input for the shortcut
    (`proj`); with `pool` it halves the grid (queries and shortcut max-pooled 2x2).
    `window` > 0 attends within windows of that side, 0 globally.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        window: int,
        pool: bool,
    ) -> None:
        super().__init__()
        self.window = window
        self.pool = pool
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = GeluMLP(dim_out, int(dim_out * mlp_ratio))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """`scratch` (inference only) lends buffers to the widest intermediates."""
        normed = self.norm1(x)
        shortcut = x if self.proj is None else _linear(self.proj, normed, scratch, "shortcut")
        if self.pool:
            shortcut = pool2x2(shortcut)
        # In-place residual adds into fresh layer outputs (no backward needs them).
        x = self.attn(normed, self.window, scratch).add_(shortcut)
        return self.mlp(self.norm2(x), scratch).add_(x)


class PatchEmbed(nn.Module):
    """(B, 3, S, S) -> (B, S/4, S/4, C): a 7x7 convolution, stride 4, padding 3."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On a channels-last input the convolution writes channels-last, so the permuted
        # result is a contiguous (B, H, W, C) grid.
        x = self.proj(x.contiguous(memory_format=torch.channels_last))
        return x.permute(0, 2, 3, 1)


def block_layout(config: HieraConfig) -> list[tuple[int, int, int, int, bool]]:
    """(dim, dim_out, heads, window, pool) of every block, as the reference lays them out.

    The first block of each later stage widens and (for the first `q_pool` stages) pools;
    its attention window is still the previous stage's.
    """
    stage_starts = {sum(config.stages[:i]) for i in range(1, len(config.stages))}
    pool_starts = sorted(stage_starts)[: config.q_pool]
    dim, heads, stage = config.embed_dim, config.num_heads, 0
    layout = []
    for i in range(sum(config.stages)):
        window = config.window_spec[stage]
        dim_out = dim
        if i in stage_starts:
            dim_out = int(dim * config.dim_mul)
            heads = int(heads * config.head_mul)
            stage += 1
        if i in config.global_att_blocks:
            window = 0
        layout.append((dim, dim_out, heads, window, i in pool_starts))
        dim = dim_out
    return layout


class Hiera(nn.Module):
    """(B, 3, S, S) normalised image -> one (B, S/4 / 2^i, S/4 / 2^i, C_i) grid per stage,
    finest first (C_i = embed_dim * dim_mul^i). Keys as the reference's `trunk.*`."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        if tuple(config.q_stride) != (2, 2):
            raise ValueError(f"Hiera: only q_stride (2, 2) is supported, got {config.q_stride}")
        self.config = config
        self.patch_embed = PatchEmbed(config.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, config.embed_dim, *config.window_pos_embed_bkg_spatial_size)
        )
        win = config.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, config.embed_dim, win, win))
        self.blocks = nn.ModuleList(
            MultiScaleBlock(dim, dim_out, heads, config.mlp_ratio, window, pool)
            for dim, dim_out, heads, window, pool in block_layout(config)
        )
        self.stage_ends = [sum(config.stages[: i + 1]) - 1 for i in range(len(config.stages))]
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    def scratch_for(self, x: torch.Tensor) -> Scratch | None:
        """Buffers for a pass over the (B, H, W, C) grid x, sized for its widest block; None
        where autograd or autocast needs the plain layers."""
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if grad or torch.is_autocast_enabled(x.device.type) or x.dtype != self.pos_embed.dtype:
            return None
        b, h, w, _ = x.shape
        widest = 0
        for block in self.blocks:
            widest = max(widest, b * h * w * block.attn.qkv.out_features)
            if block.pool:
                h, w = h // 2, w // 2
            widest = max(widest, b * h * w * block.mlp.layers[0].out_features)
        return Scratch(widest)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, h, w, C): the background embedding resized bicubically to the (h, w) grid plus
        the window embedding tiled over it. Cached while the weights are unchanged and no
        gradient is wanted."""
        bkg, win = self.pos_embed, self.pos_embed_window
        wants_grad = torch.is_grad_enabled() and (bkg.requires_grad or win.requires_grad)
        # Parameters made under inference mode have no version counter to watch.
        cacheable = not (wants_grad or bkg.is_inference() or win.is_inference())
        key = (h, w, bkg.data_ptr(), win.data_ptr(), bkg.dtype, bkg.device)
        if cacheable:
            key += (bkg._version, win._version)
            if self._pos_cache is not None and self._pos_cache[0] == key:
                return self._pos_cache[1]
        ws = win.shape[-1]
        if h % ws or w % ws:
            raise ValueError(f"Hiera: a {h}x{w} token grid does not tile into {ws}x{ws} windows")
        pos = F.interpolate(bkg, size=(h, w), mode="bicubic")
        pos = pos + win.tile(1, 1, h // ws, w // ws)
        pos = pos.permute(0, 2, 3, 1).contiguous()  # (1, h, w, C)
        if cacheable:
            self._pos_cache = (key, pos)
        return pos

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)  # (B, S/4, S/4, C)
        x = x.add_(self.position_embedding(x.shape[1], x.shape[2]))
        scratch = self.scratch_for(x)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x, scratch)
            if i in self.stage_ends:
                outputs.append(x)
        return outputs
