"""MobileSAM's image encoder (Zhang et al. 2023): TinyViT (Wu et al. 2022) distilled from SAM's.

A stride-4 convolutional stem, one stage of MBConv blocks (MobileNetV2 inverted residuals), then
three stages of windowed-attention blocks with a LeViT-style learned position bias. Convolutional
patch merging between stages halves the grid, except before the last stage, which stays at 1/16
so the embedding has the grid SAM's mask decoder expects.

Parameter names follow the released MobileSAM checkpoint. For speed on CPU, unlike the reference:
- each conv + batch-norm pair is folded into one convolution at inference (the parameters stay
  separate, so checkpoints load unchanged and training still uses batch statistics);
- attention runs through `scaled_dot_product_attention` with the position bias as its mask;
- activations stay in channels-last memory, so the token view (B, H, W, C) used by attention and
  the image view (B, C, H, W) used by convolutions are the same memory and switching is free.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segany.errors import ImageError
from segany.modeling.common import LayerNorm2d, gelu_fresh, window_partition, window_unpartition
from segany.modeling.config import TinyViTConfig

# Elements (2**21 float32 = 8 MB) of the expanded map MBConv computes per band of rows on CPU.
_BAND_ELEMENTS = 2**21


class ConvBN(nn.Module):
    """Bias-free convolution followed by batch norm (the `c`, `bn` pair of TinyViT's Conv2d_BN).

    Padding is kernel_size // 2, so a stride-1 conv keeps the grid size.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(
            in_chans, out_chans, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chans)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, out_chans, H / stride, W / stride), same memory format."""
        bn = self.bn
        if self.training or bn.running_var is None:
            return bn(self.c(x))
        # With running statistics the norm is a per-channel affine map: folding it into the kernel
        # (a few thousand numbers) saves a full pass over the activation map.
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (out_chans,)
        weight = self.c.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        c = self.c
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)


class PatchEmbed(nn.Module):
    """Stem: two stride-2 3x3 convs, (B, 3, H, W) -> (B, embed_dim, H / 4, W / 4)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        # GELU sits at index 1 only so that the checkpoint's `seq.0` / `seq.2` names line up.
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, 3, stride=2),
            nn.GELU(),
            ConvBN(embed_dim // 2, embed_dim, 3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem_conv1, _, stem_conv2 = self.seq
        return stem_conv2(gelu_fresh(stem_conv1(x)))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU.

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        # Zero-initialised last norm: a fresh block starts as the identity (before the GELU).
        self.conv3 = ConvBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # On CPU the expanded (B, 4C, H, W) maps of the first stage are 64 MB each, so the block
        # is bound by memory traffic and page faults. Bands of rows whose expanded maps fit in
        # cache run about twice as fast and give identical results. Training needs the batch-norm
        # statistics of the whole map, and GPUs gain nothing, so both take one band.
        rows = h
        if x.device.type == "cpu" and not self.training:
            rows = max(8, _BAND_ELEMENTS // (b * self.conv1.c.out_channels * w))
        if rows >= h:
            return self._rows(x, 0, h)
        return torch.cat([self._rows(x, r, min(r + rows, h)) for r in range(0, h, rows)], dim=2)

    def _rows(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Output rows [start, stop) as (B, C, stop - start, W), read from x's rows one beyond
        either end (the depthwise conv's halo)."""
        lo, hi = max(start - 1, 0), min(stop + 1, x.shape[2])
        y = gelu_fresh(self.conv1(x[:, :, lo:hi]))
        # The conv zero-pads every band edge, but only rows at the image border keep that output;
        # the others are cut off here and come from the neighbouring band instead.
        y = gelu_fresh(self.conv2(y))[:, :, start - lo : stop - lo]
        y = self.conv3(y)
        y += x[:, :, start:stop]  # in place is safe: neither conv nor batch norm needs its output
        return gelu_fresh(y)


class PatchMerging(nn.Module):
    """1x1 conv, strided 3x3 depthwise conv, 1x1 conv: (B, C, H, W) -> (B, C', H/s, W/s)."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = gelu_fresh(self.conv1(x))
        x = gelu_fresh(self.conv2(x))
        return self.conv3(x)


def window_offset_index(window_size: int) -> torch.Tensor:
    """(N, N) long index, N = window_size**2, of each cell pair's offset (|dy|, |dx|).

    Cells are numbered row-major; the offset (dy, dx) has index dy * window_size + dx, which is
    the order in which LeViT's loop over cell pairs first meets each offset, so it addresses the
    checkpoint's `attention_biases` columns directly.
    """
    cells = torch.arange(window_size * window_size)
    rows, cols = cells // window_size, cells % window_size  # (N,) each
    dy = (rows[:, None] - rows[None, :]).abs()
    dx = (cols[:, None] - cols[None, :]).abs()
    return dy * window_size + dx


class Attention(nn.Module):
    """Pre-norm multi-head self-attention inside one window, plus a learned bias per head and
    per relative offset (LeViT, Graham et al. 2021). (B, N, C) -> (B, N, C), N = window**2."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        # Output features are grouped per head as (q, k, v), each head_dim wide.
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        # Derived from the window size alone, so not saved (as in the reference checkpoint).
        self.register_buffer(
            "attention_bias_idxs", window_offset_index(window_size), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.transpose(1, 2).split(self.head_dim, dim=-1)  # each (B, heads, N, hd)
        # A 4-d mask: given (heads, N, N), torch 2.x on CPU drops to its slow unfused kernel.
        bias = self.attention_biases[None, :, self.attention_bias_idxs]  # (1, heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, heads, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Pre-norm feed-forward: LayerNorm, fc1, GELU, fc2. (..., C) -> (..., C)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_fresh(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention, a depthwise "local" conv mixing across window borders, then an MLP.

    (B, C, H, W) -> (B, C, H, W); fastest when the input is channels-last in memory.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, local_conv_size: int
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))  # registered before local_conv: checkpoint order
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        b, h, w, c = tokens.shape
        # Padding cells are zeros that take part in attention unmasked, as in the reference:
        # the released weights were trained that way.
        windows, padded = window_partition(tokens, self.window_size)  # (B * nW, ws, ws, C)
        out = self.attn(windows.flatten(1, 2)).view_as(windows)
        tokens = tokens + window_unpartition(out, self.window_size, padded, (h, w))
        tokens = self.local_conv(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        update = self.mlp(tokens)
        update += tokens
        return update.permute(0, 3, 1, 2)


class Stage(nn.Module):
    """A run of same-width blocks, then an optional patch merging to the next stage's width."""

    def __init__(self, blocks: list[nn.Module], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C', H / s, W / s), s the merge stride (1 without a merge)."""
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class TinyViT(nn.Module):
    """(B, 3, H, W) normalised, padded image -> (B, out_chans, H / 16, W / 16) embedding.

    H and W are `config.img_size` for SAM, but any multiple of 16 works (no absolute positions).
    """

    def __init__(self, config: TinyViTConfig) -> None:
        super().__init__()
        lengths = {
            len(config.embed_dims),
            len(config.depths),
            len(config.num_heads),
            len(config.window_sizes),
        }
        if lengths != {4}:
            raise ValueError(
                "TinyViTConfig needs exactly 4 entries in embed_dims, depths, num_heads and "
                f"window_sizes (one conv stage + three attention stages, stride 16); got {config}"
            )
        for dim, heads in zip(config.embed_dims[1:], config.num_heads[1:], strict=True):
            if dim % heads:
                raise ValueError(
                    f"TinyViTConfig: embed_dim {dim} is not divisible by its num_heads {heads}"
                )
        self.config = config
        self.img_size = config.img_size
        dims = config.embed_dims

        self.patch_embed = PatchEmbed(3, dims[0])
        stages = [
            Stage(
                [MBConv(dims[0], config.mbconv_expand_ratio) for _ in range(config.depths[0])],
                PatchMerging(dims[0], dims[1], stride=2),
            )
        ]
        for i in range(1, 4):
            blocks = [
                TinyViTBlock(
                    dims[i],
                    config.num_heads[i],
                    config.window_sizes[i],
                    config.mlp_ratio,
                    config.local_conv_size,
                )
                for _ in range(config.depths[i])
            ]
            # MobileSAM's change to TinyViT: the merge into the last stage keeps the grid (stride
            # 1), leaving the output at 1/16 of the image like SAM's ViT.
            merge = PatchMerging(dims[i], dims[i + 1], stride=2 if i < 2 else 1) if i < 3 else None
            stages.append(Stage(blocks, merge))
        self.layers = nn.ModuleList(stages)

        # TinyViT's ImageNet classifier: never used, kept so MobileSAM's checkpoint loads strictly.
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], config.num_classes) if config.num_classes > 0 else None

        out = config.out_chans
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], out, kernel_size=1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out),
        )
        for module in self.modules():
            if isinstance(module, nn.Linear):  # TinyViT's init, for training from scratch
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_chans, H / 16, W / 16), a contiguous tensor."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 16 or x.shape[3] % 16:
            raise ImageError(
                f"TinyViT expects a (B, 3, H, W) image batch with H and W multiples of 16 "
                f"(normally {self.config.img_size}); got shape {tuple(x.shape)}"
            )
        # Converting the 3-channel input is cheap, and every later map inherits channels-last.
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for stage in self.layers:
            x = stage(x)
        return self.neck(x).contiguous()
