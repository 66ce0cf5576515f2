"""`Sam` composes an image encoder, a prompt encoder and a mask decoder, with SAM's pre- and
post-processing (pixel normalisation, padding to a square, upscaling masks back)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segany.modeling.mask_decoder import MaskDecoder
from segany.modeling.model_base import ModelBase
from segany.modeling.prompt_encoder import PromptEncoder


class Sam(ModelBase, nn.Module):
    """The Segment Anything model.

    Frames: the *original* frame is the user's image (H, W); the *input* frame is that image
    resized so its longest side is `image_size` (h', w'), then zero-padded at the bottom and
    right to (image_size, image_size). Point and box prompts are in input-frame pixels.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: tuple[float, float, float],
        pixel_std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h', w') resized 0..255 RGB -> (B, 3, S, S) normalised and zero-padded."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.image_size - w, 0, self.image_size - h))

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """Upscale low-resolution logits to the original image.

        Args:
            masks: (B, C, 4h, 4w) logits covering the padded (S, S) input.
            input_size: (h', w') of the resized image before padding.
            original_size: (H, W) of the original image.

        Returns (B, C, H, W) logits. Same result as upsampling to (S, S), cropping to
        (h', w') and resizing to (H, W), but the rows and columns that only cover padding
        are dropped before the first upsampling.
        """
        low_h, low_w = masks.shape[-2:]
        scale_h, scale_w = self.image_size / low_h, self.image_size / low_w
        keep_h = _source_extent(input_size[0], scale_h, low_h)
        keep_w = _source_extent(input_size[1], scale_w, low_w)
        if scale_h == int(scale_h) and scale_w == int(scale_w):
            masks = F.interpolate(
                masks[..., :keep_h, :keep_w],
                scale_factor=(scale_h, scale_w),
                mode="bilinear",
                align_corners=False,
            )
        else:
            masks = F.interpolate(
                masks, (self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        masks = masks[..., : input_size[0], : input_size[1]]
        if tuple(masks.shape[-2:]) != tuple(original_size):
            masks = F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
        return masks

    @torch.no_grad()
    def forward(
        self, batched_input: list[dict[str, Any]], multimask_output: bool
    ) -> list[dict[str, torch.Tensor]]:
        """End-to-end prediction, in the reference's batched-dict format.

        Each input dict has "image" (3, h', w') resized 0..255, "original_size" (H, W) and
        optionally "point_coords" (B, N, 2), "point_labels" (B, N), "boxes" (B, 4) and
        "mask_inputs" (B, 1, 4h, 4w), prompts in the input frame. Each output dict has
        "masks" (B, C, H, W) bool, "iou_predictions" (B, C) and "low_res_logits" (B, C, 4h, 4w).
        """
        images = torch.stack([self.preprocess(x["image"][None])[0] for x in batched_input])
        embeddings = self.image_encoder(images)
        outputs = []
        for record, embedding in zip(batched_input, embeddings, strict=True):
            points = None
            if "point_coords" in record:
                points = (record["point_coords"], record["point_labels"])
            sparse, dense = self.prompt_encoder(
                points, record.get("boxes"), record.get("mask_inputs")
            )
            low_res, iou = self.mask_decoder(
                embedding[None], self.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output
            )
            masks = self.postprocess_masks(
                low_res, tuple(record["image"].shape[-2:]), tuple(record["original_size"])
            )
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou,
                    "low_res_logits": low_res,
                }
            )
        return outputs


def _source_extent(out_extent: int, scale: float, src_extent: int) -> int:
    """How many source rows bilinear upsampling by `scale` reads for the first `out_extent`
    output rows (align_corners=False): the last one's lower neighbour plus its upper one."""
    last = (out_extent - 1 + 0.5) / scale - 0.5
    return min(src_extent, max(int(last), 0) + 2)
