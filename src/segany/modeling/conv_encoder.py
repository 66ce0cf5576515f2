"""segany's own small image encoder: a convolutional network with dilated context and one
global-attention block, for the built-in `segany-tiny` model trained on this project's CPUs.

Why convolutions: trained from scratch on a 2-core CPU, a small conv net learned several times
faster per minute than a plain ViT of the same size (../shared/PERFORMANCE.md). Dilated blocks
(DeepLab's idea, Chen et al. 2017) grow the receptive field without more downsampling, and the
global-attention block at the end gives every position the whole image, as SAM's ViT does.

Layout (S the input size; with `stride` 4 a 256 px input gives a 64 x 64 embedding and
256 x 256 mask logits, one per input pixel):

    stem      conv 3x3 /2 -> conv 3x3 /2                       (B, C1, S/4, S/4)
    stage 1   residual blocks at stride 4
    down      conv 3x3 /2                                      (B, C2, S/8, S/8)
    stage 2   residual blocks at stride 8, dilations cycling 1, 2, 4, 8
    context   global self-attention + MLP over the S/8 x S/8 tokens, learned positions
    fuse      (stride 4 only) upsample x2 + conv 1x1 of stage 1, residual blocks  (B, C2, S/4, S/4)
    neck      conv 1x1 -> LayerNorm2d -> conv 3x3 -> LayerNorm2d  (B, out_chans, S/s, S/s)

The stride-4 fusion is a feature pyramid's top-down step (Lin et al. 2017): the small test
masks of the synthetic scenes (half are under 16 x 16 px) need detail finer than 8 px cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segany.errors import ImageError
from segany.modeling.common import LayerNorm2d, MLPBlock
from segany.modeling.config import ConvEncoderConfig


class ConvNormAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> GELU (optional)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: bool = True,
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.GELU())
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + BN(conv1x1(GELU(BN(conv3x3_dilated(x))))): a "fused-MBConv" block without expansion."""

    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        self.spatial = ConvNormAct(dim, dim, 3, dilation=dilation)
        self.mix = ConvNormAct(dim, dim, 1, act=False)
        nn.init.zeros_(self.mix[1].weight)  # each block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.spatial(x))


class GlobalBlock(nn.Module):
    """Pre-norm transformer block over all (h * w) positions of a (B, C, h, w) map."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, hw, C)
        qkv = self.qkv(self.norm1(tokens)).view(b, h * w, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, hw, head_dim)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, heads, hw, head_dim)
        tokens = tokens + self.proj(attended.transpose(1, 2).reshape(b, h * w, c))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


def sam_neck(cin: int, out: int) -> nn.Sequential:
    """SAM's neck: conv 1x1 -> LayerNorm2d -> conv 3x3 -> LayerNorm2d, (B, cin, h, w) ->
    (B, out, h, w); keys neck.0 .. neck.3 as in the official checkpoints."""
    return nn.Sequential(
        nn.Conv2d(cin, out, kernel_size=1, bias=False),
        LayerNorm2d(out),
        nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out),
    )


class ConvEncoder(nn.Module):
    """(B, 3, S, S) normalised, padded image -> (B, out_chans, S / s, S / s) embedding,
    S = `config.img_size` (the learned positions fix the input size), s = `config.stride`."""

    def __init__(self, config: ConvEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        c1, c2 = config.dims
        grid = config.context_size
        self.stem = nn.Sequential(
            ConvNormAct(3, c1 // 2, stride=2), ConvNormAct(c1 // 2, c1, stride=2)
        )
        self.stage1 = nn.Sequential(*(ResidualBlock(c1, 1) for _ in range(config.depths[0])))
        self.down = ConvNormAct(c1, c2, stride=2)
        self.stage2 = nn.Sequential(
            *(
                ResidualBlock(c2, config.dilations[i % len(config.dilations)])
                for i in range(config.depths[1])
            )
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, c2, grid, grid))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.context = nn.Sequential(
            *(
                GlobalBlock(c2, config.num_heads, config.mlp_ratio)
                for _ in range(config.global_blocks)
            )
        )
        if config.stride == 4:
            self.lateral = ConvNormAct(c1, c2, 1, act=False)
            self.fuse = nn.Sequential(*(ResidualBlock(c2, 1) for _ in range(config.fuse_blocks)))
        self.neck = sam_neck(c2, config.out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, out_chans, S / s, S / s), a contiguous tensor."""
        check_image_batch(x, self.config.img_size, "ConvEncoder")
        fine = self.stage1(self.stem(x.contiguous(memory_format=torch.channels_last)))
        x = self.stage2(self.down(fine))
        x = self.context(x + self.pos_embed)
        if self.config.stride == 4:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.fuse(x + self.lateral(fine))
        return self.neck(x).contiguous()


def check_image_batch(x: torch.Tensor, size: int, encoder: str) -> None:
    """`ImageError` unless x is a (B, 3, size, size) batch, the input `encoder` expects."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (size, size):
        raise ImageError(
            f"{encoder} expects a (B, 3, {size}, {size}) image batch; got shape {tuple(x.shape)}"
        )
