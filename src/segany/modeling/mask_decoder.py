"""SAM's mask decoder: a two-way transformer over prompt and image tokens, then a hypernetwork
product of each output token with the upscaled image embedding, and an IoU prediction head."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.common import MLP, LayerNorm2d, gelu_fresh
from segany.modeling.two_way_transformer import ImageSide, TwoWayTransformer

# multimask_output: True (the 3 multimask outputs), False (the single one) or "all" (the 4,
# the single one first, from one decoder pass).
Outputs = bool | Literal["all"]


class MaskDecoder(nn.Module):
    """Predicts 1 + `num_multimask_outputs` masks and their IoU from image and prompt embeddings.

    Output token 0 is the single-mask output; tokens 1.. are the ambiguity-aware
    multimask outputs (whole, part, sub-part).
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = output_upscaling(transformer_dim)
        self.output_hypernetworks_mlps = hypernetwork_mlps(transformer_dim, self.num_mask_tokens)
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: Outputs,
        image_side: ImageSide | None = None,
        skip_below_iou: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompts on one image (or B images, one prompt each).

        Args:
            image_embeddings: (1 or B, C, h, w); a single embedding is shared by all prompts.
            image_pe: (1, C, h, w) positional encoding of the embedding grid.
            sparse_prompt_embeddings: (B, N, C) point and box embeddings.
            dense_prompt_embeddings: (B, C, h, w) mask embeddings.
            multimask_output: return the 3 multimask outputs instead of the single one;
                "all": the 4 outputs, the single one first (one pass for both).
            image_side: from `image_side()` for this image and dense prompt: skips the
                prompt-independent work (dense_prompt_embeddings is then not read).
            skip_below_iou: if given, prompts whose returned IoU predictions are all at or
                below it get no masks computed (their logits are -inf): the upscaling, most
                of a prompt's cost, runs only for prompts a caller filtering by predicted IoU
                (automatic mask generation) will keep.

        Returns:
            low-resolution mask logits (B, T, 4h, 4w) and IoU predictions (B, T); T is 3, 1
            or 4.
        """
        if isinstance(multimask_output, str) and multimask_output != "all":
            raise ValueError(f"multimask_output must be a bool or 'all', got {multimask_output!r}")
        if multimask_output == "all":
            outputs = slice(None)
        else:
            outputs = slice(1, None) if multimask_output else slice(0, 1)
        return self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            image_side,
            outputs,
            skip_below_iou,
        )

    def image_side(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> ImageSide:
        """Precompute the prompt-independent decoder work for one image embedding
        (1, C, h, w) and one dense prompt (1, C, h, w), e.g. the "no mask" embedding."""
        return self.transformer.image_side(image_embeddings + dense_prompt_embeddings, image_pe)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_side: ImageSide | None = None,
        outputs: slice = slice(None),
        skip_below_iou: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The masks (B, T, 4h, 4w) and IoU predictions (B, T) of the output tokens `outputs`
        (default all 1 + num_multimask_outputs); `skip_below_iou` as in `forward`."""
        mask_tokens, image_tokens, iou_pred = self.run_transformer(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            image_side,
        )
        iou_pred = iou_pred[:, outputs]
        mask_tokens = mask_tokens[:, outputs]
        grid = image_embeddings.shape[-2:]
        if skip_below_iou is None:
            return self.masks_from_tokens(mask_tokens, image_tokens, grid, outputs), iou_pred
        keep = torch.nonzero((iou_pred > skip_below_iou).any(dim=1)).flatten()  # (K,)
        b, t = mask_tokens.shape[:2]
        masks = torch.full(
            (b, t, 4 * grid[0], 4 * grid[1]),
            -torch.inf,
            dtype=iou_pred.dtype,
            device=iou_pred.device,
        )
        if len(keep):
            masks[keep] = self.masks_from_tokens(
                mask_tokens[keep], image_tokens[keep], grid, outputs
            ).to(masks.dtype)
        return masks, iou_pred

    def run_transformer(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_side: ImageSide | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The two-way transformer and the IoU head: mask tokens (B, T, C), image tokens
        (B, h*w, C) and IoU predictions (B, T), T = 1 + num_multimask_outputs."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat(
            [output_tokens[None].expand(batch, -1, -1), sparse_prompt_embeddings], dim=1
        )  # (B, 1 + T + N, C)
        if image_side is None:
            # Broadcasting instead of repeating the shared embedding B times saves a copy.
            src = image_embeddings + dense_prompt_embeddings  # (B, C, h, w)
            pos_src = image_pe.expand(src.shape[0], -1, -1, -1)
            hs, image_tokens = self.transformer(src, pos_src, tokens)
        else:
            hs, image_tokens = self.transformer(None, None, tokens, image_side)
        iou_pred = self.iou_prediction_head(hs[:, 0, :])
        return hs[:, 1 : 1 + self.num_mask_tokens, :], image_tokens, iou_pred

    def masks_from_tokens(
        self,
        mask_tokens: torch.Tensor,
        image_tokens: torch.Tensor,
        grid: tuple[int, int],
        outputs: slice = slice(None),
    ) -> torch.Tensor:
        """Mask logits (B, T', 4h, 4w) from mask tokens (B, T', C) (the outputs `outputs` of
        the T mask tokens) and the transformer's image tokens (B, h*w, C) on an (h, w) grid."""
        b, (h, w) = mask_tokens.shape[0], grid
        upscaled = self.upscale(image_tokens.reshape(b, h * w, -1))  # (B, h*w*16, C/8)
        mlps = self.output_hypernetworks_mlps[outputs]
        return hypernetwork_masks(mlps, mask_tokens, upscaled, grid)

    def upscale(self, x: torch.Tensor) -> torch.Tensor:
        """`output_upscaling` on (B, N, C) image tokens -> (B, N * 16, C/8) features.

        A 2x2, stride-2 transposed convolution is a per-pixel matmul whose output columns are
        the four sub-pixels; on the CPU that is several times faster than the generic
        deconvolution kernel. The sub-pixels stay where the matmul puts them (layer norm, GELU
        and the second deconvolution act per pixel), and only the final masks are shuffled.
        """
        deconv1, norm, _, deconv2, _ = self.output_upscaling  # the GELUs have no weights
        b = x.shape[0]
        x = _deconv2x2(x.reshape(-1, x.shape[-1]), deconv1)  # (B*N*4, C/4)
        x = gelu_fresh(F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps))
        x = gelu_fresh(_deconv2x2(x, deconv2))  # (B*N*16, C/8)
        return x.view(b, -1, x.shape[-1])


def output_upscaling(transformer_dim: int) -> nn.Sequential:
    """SAM's (and SAM 2's) 4x upscaling of the image tokens, C -> C/8 channels: two 2x2,
    stride-2 transposed convolutions with a layer norm and GELUs."""
    dim = transformer_dim
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
        LayerNorm2d(dim // 4),
        nn.GELU(),
        nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
        nn.GELU(),
    )


def hypernetwork_mlps(transformer_dim: int, num_mask_tokens: int) -> nn.ModuleList:
    """One 3-layer MLP per mask token, C -> C/8: the token's weights over upscaled pixels."""
    return nn.ModuleList(
        MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
        for _ in range(num_mask_tokens)
    )


def hypernetwork_masks(
    mlps: Iterable[nn.Module],
    mask_tokens: torch.Tensor,
    pixels: torch.Tensor,
    grid: tuple[int, int],
) -> torch.Tensor:
    """Mask logits (B, T', 4h, 4w): each of the mask tokens (B, T', C) through its MLP
    (B, T', C/8), times the upscaled pixels (B, h*w*16, C/8) of an (h, w) grid, which are
    in the order the matmul upscaling leaves them, (i, j, di, dj, di2, dj2) for output row
    4i + 2di + di2 and column 4j + 2dj + dj2."""
    b, (h, w) = pixels.shape[0], grid
    hyper_in = torch.stack(
        [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(mlps)], dim=1
    )  # (B, T', C/8)
    masks = hyper_in @ pixels.transpose(1, 2)  # (B, T', h*w*16), pixels unshuffled
    # Shuffle the T' masks once instead of the C/8-channel features twice.
    masks = masks.view(b, -1, h, w, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
    return masks.reshape(b, -1, 4 * h, 4 * w)


def _deconv2x2(x: torch.Tensor, deconv: nn.ConvTranspose2d) -> torch.Tensor:
    """A kernel-2, stride-2 `ConvTranspose2d` on pixels (P, Cin) -> sub-pixels (P * 4, Cout).

    out[p, di, dj, o] = sum_c x[p, c] * W[c, o, di, dj] + bias[o], rows ordered (p, di, dj).
    """
    cin, cout = x.shape[-1], deconv.out_channels
    weight = deconv.weight.permute(0, 2, 3, 1).reshape(cin, 4 * cout)  # columns (di, dj, o)
    if deconv.bias is None:
        y = x @ weight
    else:
        y = torch.addmm(deconv.bias.repeat(4), x, weight)
    return y.view(-1, cout)
