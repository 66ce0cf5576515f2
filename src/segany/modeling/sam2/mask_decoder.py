"""SAM 2's mask decoder: SAM's two-way transformer and hypernetwork masks, plus skip
connections from the encoder's stride-4 and stride-8 features into the upscaling, an
object-score token and head (is the object in this frame?), sigmoid IoU predictions, and a
fallback from an unstable single mask to the best of the three multimask outputs."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.common import MLP, gelu_fresh
from segany.modeling.mask_decoder import (
    Outputs,
    _deconv2x2,
    hypernetwork_masks,
    hypernetwork_mlps,
    output_upscaling,
)
from segany.modeling.two_way_transformer import ImageSide, TwoWayTransformer


class DecoderOutput(NamedTuple):
    """masks: (B, T, 4h, 4w) low-resolution logits; iou: (B, T) predicted IoU in [0, 1];
    sam_tokens: (B, 1 or 3, C) output tokens for the object pointer; object_score_logits:
    (B, 1), > 0 where the object is visible."""

    masks: torch.Tensor
    iou: torch.Tensor
    sam_tokens: torch.Tensor
    object_score_logits: torch.Tensor


def sam2_two_way_transformer(
    depth: int = 2, embedding_dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048
) -> TwoWayTransformer:
    """SAM's two-way transformer under SAM 2's key names: SAM 2 calls each block's
    feed-forward `mlp.layers.{0,1}` where SAM has `mlp.lin1/lin2` (same ReLU MLP)."""
    transformer = TwoWayTransformer(depth, embedding_dim, num_heads, mlp_dim)
    for layer in transformer.layers:
        layer.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2)
    return transformer


class Sam2MaskDecoder(nn.Module):
    """Predicts 1 + `num_multimask_outputs` masks, their IoU and an object score.

    Output token 0 is the single-mask output, tokens 1.. the multimask outputs. In eval mode a
    single mask whose stability (IoU of its logits > delta and > -delta) is below
    `stability_thresh` is replaced by the multimask output of highest predicted IoU (the
    reference's `dynamic_multimask_via_stability`, on in every official build).
    """

    def __init__(
        self,
        transformer: TwoWayTransformer,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        pred_obj_scores_mlp: bool = True,
        use_multimask_token_for_obj_ptr: bool = True,
        stability_delta: float = 0.05,
        stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.output_upscaling = output_upscaling(transformer_dim)
        # 1x1 projections of the stride-4 and stride-8 encoder features, added after each
        # upscaling step (applied once per image: `Sam2.image_features`).
        self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = hypernetwork_mlps(transformer_dim, self.num_mask_tokens)
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )
        if pred_obj_scores_mlp:
            self.pred_obj_score_head: nn.Module = MLP(transformer_dim, transformer_dim, 1, 3)
        else:
            self.pred_obj_score_head = nn.Linear(transformer_dim, 1)

    def image_side(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, dense: torch.Tensor
    ) -> ImageSide:
        """The prompt-independent decoder work for one (1, C, h, w) embedding and one dense
        prompt (1, C, h, w), e.g. the "no mask" embedding; pass it to `forward`."""
        return self.transformer.image_side(image_embeddings + dense, image_pe)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: Outputs,
        high_res_features: tuple[torch.Tensor, torch.Tensor],
        image_side: ImageSide | None = None,
        skip_below_iou: float | None = None,
    ) -> DecoderOutput:
        """Predict masks for B prompts on one image (or B images, one prompt each).

        Args:
            image_embeddings: (1 or B, C, h, w) stride-16 features (no_mem_embed added); a
                single one is shared by all prompts.
            image_pe: (1, C, h, w) positional encoding of the embedding grid.
            sparse_prompt_embeddings: (B, N, C); dense_prompt_embeddings: (B, C, h, w).
            multimask_output: True: the 3 multimask outputs; False: one mask (the single
                output, or in eval mode the best multimask one if it is unstable); "all": that
                one mask followed by the 3 (T = 4).
            high_res_features: (1 or B, C/8, 4h, 4w) and (1 or B, C/4, 2h, 2w), the stride-4
                and stride-8 features after conv_s0 and conv_s1.
            image_side: from `image_side()` for this image and dense prompt: skips the
                prompt-independent work (image_embeddings and the dense prompt are not read).
            skip_below_iou: with multimask_output True, prompts whose 3 IoU predictions are
                all at or below it get -inf logits instead of computed masks.

        Returns `DecoderOutput`: masks (B, T, 4h, 4w), iou (B, T), sam_tokens (B, 1, C), or
        (B, 3, C) with multimask_output True, and object_score_logits (B, 1).
        """
        if isinstance(multimask_output, str) and multimask_output != "all":
            raise ValueError(f"multimask_output must be a bool or 'all', got {multimask_output!r}")
        hs, image_tokens = self.run_transformer(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            image_side,
        )
        grid = (image_pe.shape[-2], image_pe.shape[-1])
        object_score_logits = self.pred_obj_score_head(hs[:, 0])  # (B, 1)
        iou = torch.sigmoid(self.iou_prediction_head(hs[:, 1]))  # (B, T)
        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens]  # (B, T, C)
        if multimask_output is True:
            if self.use_multimask_token_for_obj_ptr:
                sam_tokens = mask_tokens[:, 1:]
            else:
                sam_tokens = mask_tokens[:, :1]
            iou = iou[:, 1:]
            masks = self.masks_from_tokens(
                mask_tokens[:, 1:], image_tokens, grid, high_res_features, 1, iou, skip_below_iou
            )
            return DecoderOutput(masks, iou, sam_tokens, object_score_logits)
        # Otherwise the single-mask token is the object's token: tracking was trained after
        # several clicks, where only it is used.
        sam_tokens = mask_tokens[:, :1]
        masks = self.masks_from_tokens(mask_tokens, image_tokens, grid, high_res_features)
        if self.training:
            single_masks, single_iou = masks[:, :1], iou[:, :1]
        else:
            single_masks, single_iou = self.stable_or_best(masks, iou)
        if multimask_output == "all":
            masks = torch.cat([single_masks, masks[:, 1:]], dim=1)
            iou = torch.cat([single_iou, iou[:, 1:]], dim=1)
            return DecoderOutput(masks, iou, sam_tokens, object_score_logits)
        return DecoderOutput(single_masks, single_iou, sam_tokens, object_score_logits)

    def run_transformer(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_side: ImageSide | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way transformer: output tokens (B, 2 + T, C), in the order object score,
        IoU, the T mask tokens, then the prompts; and image tokens (B, h*w, C)."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight]
        )
        tokens = torch.cat(
            [output_tokens[None].expand(batch, -1, -1), sparse_prompt_embeddings], dim=1
        )  # (B, 2 + T + N, C)
        if image_side is not None:
            return self.transformer(None, None, tokens, image_side)
        src = image_embeddings + dense_prompt_embeddings  # (B, C, h, w), broadcast
        return self.transformer(src, image_pe.expand(src.shape[0], -1, -1, -1), tokens)

    def masks_from_tokens(
        self,
        mask_tokens: torch.Tensor,
        image_tokens: torch.Tensor,
        grid: tuple[int, int],
        high_res_features: tuple[torch.Tensor, torch.Tensor],
        first: int = 0,
        iou: torch.Tensor | None = None,
        skip_below_iou: float | None = None,
    ) -> torch.Tensor:
        """Mask logits (B, T', 4h, 4w) of mask tokens (B, T', C), the tokens first ..
        first + T' - 1, over the transformer's image tokens (B, h*w, C) on an (h, w) grid,
        upscaled with the high-resolution skips. With `skip_below_iou`, prompts whose `iou`
        (B, T') are all at or below it get -inf logits and cost no upscaling."""
        if skip_below_iou is None:
            return self._masks(mask_tokens, image_tokens, grid, high_res_features, first)
        assert iou is not None
        keep = torch.nonzero((iou > skip_below_iou).any(dim=1)).flatten()  # (K,)
        b, t = mask_tokens.shape[:2]
        masks = mask_tokens.new_full((b, t, 4 * grid[0], 4 * grid[1]), -torch.inf)
        if len(keep):
            feats = tuple(f if f.shape[0] == 1 else f[keep] for f in high_res_features)
            masks[keep] = self._masks(mask_tokens[keep], image_tokens[keep], grid, feats, first)
        return masks

    def _masks(
        self,
        mask_tokens: torch.Tensor,
        image_tokens: torch.Tensor,
        grid: tuple[int, int],
        high_res_features: tuple[torch.Tensor, torch.Tensor],
        first: int,
    ) -> torch.Tensor:
        """`output_upscaling` with the skips, as per-pixel matmuls (as SAM's decoder here:
        several times faster on CPUs than the transposed convolutions), the sub-pixels left
        in the order the matmuls make them and only the final masks shuffled."""
        deconv1, norm, _, deconv2, _ = self.output_upscaling  # the GELUs have no weights
        feat_s0, feat_s1 = high_res_features
        b, (h, w) = image_tokens.shape[0], grid
        x = _deconv2x2(image_tokens.reshape(b * h * w, -1), deconv1)  # rows (b, i, j, di, dj)
        x = x.view(b, h * w * 4, -1) + _subpixel_order(feat_s1, h, w, 1)
        x = gelu_fresh(F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps))
        x = _deconv2x2(x.view(-1, x.shape[-1]), deconv2)  # rows (..., di2, dj2)
        x = gelu_fresh(x.view(b, h * w * 16, -1) + _subpixel_order(feat_s0, h, w, 2))
        mlps = self.output_hypernetworks_mlps[first : first + mask_tokens.shape[1]]
        return hypernetwork_masks(mlps, mask_tokens, x, grid)

    def stable_or_best(
        self, masks: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """From all T outputs (B, T, H, W) and (B, T): the single mask (token 0) where it is
        stable, else the multimask output of highest predicted IoU; (B, 1, H, W), (B, 1)."""
        single, single_iou = masks[:, :1], iou[:, :1]
        best = iou[:, 1:].argmax(dim=1)  # (B,)
        rows = torch.arange(len(best), device=best.device)
        best_masks = masks[:, 1:][rows, best][:, None]
        best_iou = iou[:, 1:][rows, best][:, None]
        is_stable = stability_scores(single, self.stability_delta) >= self.stability_thresh
        masks_out = torch.where(is_stable[..., None, None], single, best_masks)
        return masks_out, torch.where(is_stable, single_iou, best_iou)


def _subpixel_order(features: torch.Tensor, h: int, w: int, levels: int) -> torch.Tensor:
    """(B, C, h * 2^levels, w * 2^levels) -> (B, h*w*4^levels, C) with pixels ordered as the
    matmul upscaling makes them: (i, j, di, dj[, di2, dj2]) for row i*2^levels + di*2^(levels-1)
    + ... of an (h, w) grid."""
    b, c = features.shape[:2]
    x = features.view(b, c, h, *(2,) * levels, w, *(2,) * levels)  # (B, C, i, di.., j, dj..)
    rows = list(range(3, 3 + levels))
    cols = list(range(4 + levels, 4 + 2 * levels))
    order = [0, 2, 3 + levels] + [d for pair in zip(rows, cols, strict=True) for d in pair] + [1]
    return x.permute(order).reshape(b, h * w * 4**levels, c)


def stability_scores(logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU of the masks `logits > delta` and `logits > -delta`: (..., H, W) -> (...); 1 for
    an empty mask."""
    flat = logits.flatten(-2)
    inner = (flat > delta).sum(dim=-1).float()
    outer = (flat > -delta).sum(dim=-1).float()
    return torch.where(outer > 0, inner / outer, 1.0)
