"""`SamPredictor`: compute an image's embedding once, then answer prompts in milliseconds.

A drop-in for the reference `segment_anything.SamPredictor` (same methods, shapes and dtypes),
plus several boxes per call, embedding reuse (`set_embedding`) and a multi-image batch call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from segany.devices import computes_bfloat16_natively
from segany.edge_refinement import EdgeRefinement, refine_masks
from segany.errors import ConfigError, ImageError, PromptError
from segany.modeling.mask_decoder import Outputs
from segany.modeling.sam import Sam
from segany.modeling.two_way_transformer import ImageSide
from segany.transforms import (
    boxes_to_input,
    coords_to_input,
    preprocess_shape,
    resize_image,
)
from segany.validation import (
    as_rgb_array,
    check_boxes,
    check_mask_input,
    check_original_size,
    check_outputs,
    check_points,
)

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


class SamPredictor:
    """Predict masks for one image at a time from point, box and mask prompts.

    Coordinates given to `predict` are xy pixels in the original image frame; those given to
    `predict_torch` are already in the model-input frame (see `segany.transforms`).
    """

    def __init__(
        self,
        sam_model: Sam,
        autocast_dtype: torch.dtype | None = None,
        encoder_autocast: torch.dtype | str | None = "auto",
        edge_refinement: EdgeRefinement | str | None = "auto",
    ) -> None:
        """`autocast_dtype=torch.bfloat16` runs all the networks under autocast (for GPUs; on
        CPUs without bf16 units it is far slower than float32).

        `encoder_autocast` does so for the image encoder alone. "auto": the model's measured
        `ModelSpec.encoder_autocast` where the device computes that dtype natively
        (`segany.devices.computes_bfloat16_natively`), float32 otherwise; the reference models
        declare none, so they always run in float32 and match the reference. None: float32.
        Outputs stay float32. `ConfigError` for any other value.

        `edge_refinement` sharpens the boolean masks `predict` returns with a guided filter
        over the image (`segany.edge_refinement`). "auto": the model's measured
        `ModelSpec.edge_refinement` (segany-tiny-v2 has one; the reference models none, so
        their masks match the reference); None: never; an `EdgeRefinement`: those settings.
        It needs the image's pixels: after `set_image`, or `set_embedding(..., image=...)`.
        Logits (`return_logits`, the low-resolution ones, `predict_torch`) are never refined.
        """
        if not (encoder_autocast in (None, "auto") or isinstance(encoder_autocast, torch.dtype)):
            raise ConfigError(
                f"encoder_autocast must be 'auto', None or a torch dtype, got {encoder_autocast!r}"
            )
        if not (edge_refinement in (None, "auto") or isinstance(edge_refinement, EdgeRefinement)):
            raise ConfigError(
                "edge_refinement must be 'auto', None or an EdgeRefinement, got "
                f"{edge_refinement!r}"
            )
        self.model = sam_model
        self.autocast_dtype = autocast_dtype
        self.encoder_autocast = encoder_autocast
        if edge_refinement == "auto":
            edge_refinement = getattr(getattr(sam_model, "spec", None), "edge_refinement", None)
        self.edge_refinement: EdgeRefinement | None = edge_refinement
        self.reset_image()

    def _autocast(self, dtype: torch.dtype | None = None) -> contextlib.AbstractContextManager:
        """Autocast to `dtype` (default: `autocast_dtype`, for all the networks); none for None."""
        dtype = self.autocast_dtype if dtype is None else dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def encoder_dtype(self) -> torch.dtype | None:
        """The dtype the image encoder runs in under autocast now, None for float32."""
        if self.autocast_dtype is not None:
            return self.autocast_dtype
        if self.encoder_autocast != "auto":
            return self.encoder_autocast
        measured = getattr(getattr(self.model, "spec", None), "encoder_autocast", None)
        if measured is None or not computes_bfloat16_natively(self.device):
            return None
        return measured

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def low_res_size(self) -> tuple[int, int]:
        """(h, w) of low-resolution logits: 4x the embedding grid (256 x 256 for SAM)."""
        h, w = self.model.prompt_encoder.mask_input_size
        return h, w

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.is_image_set = False
        self.features: torch.Tensor | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        # Prompt-independent decoder work for this image, made on the first mask-less prompt.
        self._image_side: ImageSide | None = None
        # The image's (H, W, 3) uint8 RGB pixels, kept only for edge refinement.
        self._guide: np.ndarray | None = None

    # ---- image ---------------------------------------------------------------------------

    def set_image(self, image: Any, image_format: str = "RGB") -> None:
        """Compute the embedding of an (H, W, 3) uint8 array (RGB or BGR) or a PIL image."""
        rgb = np.ascontiguousarray(as_rgb_array(image, image_format))
        resized = resize_image(rgb, self.model.image_size)
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None]
        self.set_torch_image(tensor, rgb.shape[:2])
        self._keep_guide(rgb)

    @torch.inference_mode()
    def set_torch_image(
        self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]
    ) -> None:
        """(1, 3, h', w') image already resized to the input frame, 0..255 values."""
        if transformed_image.ndim != 4 or transformed_image.shape[:2] != (1, 3):
            raise ImageError(
                f"expected a (1, 3, h, w) tensor, got shape {tuple(transformed_image.shape)}"
            )
        if max(transformed_image.shape[2:]) != self.model.image_size:
            raise ImageError(
                f"the longest side must be resized to {self.model.image_size} first "
                f"(segany.transforms.resize_image), got {tuple(transformed_image.shape)}"
            )
        self.reset_image()
        self.original_size = (int(original_image_size[0]), int(original_image_size[1]))
        self.input_size = (int(transformed_image.shape[2]), int(transformed_image.shape[3]))
        image = self.model.preprocess(transformed_image.to(torch.float32))
        with self._autocast(self.encoder_dtype()):
            self.features = self.model.image_encoder(image).float()
        self.is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding, (1, C, h, w)."""
        self._require_image()
        return self.features

    def set_embedding(
        self, embedding: torch.Tensor, original_size: tuple[int, int], image: Any = None
    ) -> None:
        """Reuse an embedding from `get_image_embedding` for an (H, W) image: no encoder pass.
        `image`: the (H, W, 3) uint8 RGB pixels, for edge refinement (without them the masks
        are not refined)."""
        grid = self.model.prompt_encoder.image_embedding_size
        expected = (1, self.model.prompt_encoder.embed_dim, *grid)
        if not isinstance(embedding, torch.Tensor) or tuple(embedding.shape) != expected:
            shape = tuple(getattr(embedding, "shape", ()))
            raise ImageError(f"embedding must be a tensor of shape {expected}, got {shape}")
        h, w = check_original_size(original_size)
        self.reset_image()
        self.features = embedding.to(self.device, torch.float32)
        self.original_size = (h, w)
        self.input_size = preprocess_shape(h, w, self.model.image_size)
        self.is_image_set = True
        if image is not None:
            rgb = as_rgb_array(image)
            if rgb.shape[:2] != (h, w):
                raise ImageError(
                    f"the image is {rgb.shape[1]}x{rgb.shape[0]} but the embedding is of a "
                    f"{w}x{h} image"
                )
            self._keep_guide(rgb)

    def _keep_guide(self, rgb: np.ndarray) -> None:
        if self.edge_refinement is not None:
            self._guide = rgb  # the caller's array when it is already RGB uint8: not copied

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise PromptError("no image is set: call set_image(image) before predicting")

    # ---- prompts -------------------------------------------------------------------------

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: Outputs = True,
        return_logits: bool = False,
    ) -> Prediction:
        """Predict masks for the current image.

        Args:
            point_coords: (N, 2) xy pixels in the original image; with several boxes also
                (B, N, 2), one set per box.
            point_labels: (N,) or (B, N): 1 foreground, 0 background, -1 ignored.
            box: (4,) xyxy in the original image, or (B, 4) for B boxes in one call.
            mask_input: (1, 256, 256) low-resolution logits from a previous call, or
                (B, 1, 256, 256) with B boxes.
            multimask_output: 3 ambiguity-aware masks instead of 1; "all": the single-mask
                output followed by the 3 (C = 4), from one decoder pass.
            return_logits: return float logits instead of boolean masks (never refined).

        Returns:
            masks (C, H, W) bool (or float32 logits), iou predictions (C,) float32,
            low-resolution logits (C, 256, 256) float32; C is 3, 1 or 4. With B > 1 boxes every
            array gains a leading B axis.
        """
        self._require_image()
        check_outputs(multimask_output)
        coords, labels = check_points(point_coords, point_labels)
        boxes = check_boxes(box)
        if coords is None and boxes is None and mask_input is None:
            raise PromptError("give at least one prompt: point_coords, box or mask_input")
        batch = 1 if boxes is None else boxes.shape[0]
        if coords is not None and coords.ndim == 3 and coords.shape[0] != batch:
            raise PromptError(
                f"point_coords of shape {coords.shape} need {coords.shape[0]} boxes, got {batch}"
            )
        masks_np = check_mask_input(mask_input, self.low_res_size, batch)

        long_side = self.model.image_size
        device = self.device
        coords_t = labels_t = boxes_t = masks_t = None
        if coords is not None:
            coords = coords_to_input(coords, self.original_size, long_side)
            coords_t = torch.as_tensor(coords, dtype=torch.float, device=device)
            labels_t = torch.as_tensor(labels, dtype=torch.int, device=device)
            if coords_t.ndim == 2:
                coords_t = coords_t[None].expand(batch, -1, -1)
                labels_t = labels_t[None].expand(batch, -1)
        if boxes is not None:
            boxes = boxes_to_input(boxes, self.original_size, long_side)
            boxes_t = torch.as_tensor(boxes, dtype=torch.float, device=device)
        if masks_np is not None:
            masks_t = torch.as_tensor(masks_np, dtype=torch.float, device=device)
            masks_t = masks_t.expand(batch, -1, -1, -1)

        refine = self.edge_refinement is not None and self._guide is not None and not return_logits
        masks, iou, low_res = self.predict_torch(
            coords_t, labels_t, boxes_t, masks_t, multimask_output, return_logits or refine
        )
        masks_np = masks.cpu().numpy()  # (B, C, H, W)
        if refine:
            masks_np = np.stack([self.threshold_masks(m) for m in masks_np])
        outputs = (masks_np, iou.cpu().numpy(), low_res.cpu().numpy())
        return outputs if batch > 1 else tuple(x[0] for x in outputs)

    def threshold_masks(self, logits: np.ndarray) -> np.ndarray:
        """(C, H, W) float logits at the current image's original size -> (C, H, W) bool
        masks: refined (`edge_refinement`) when the predictor has settings and the image's
        pixels, else the plain threshold."""
        if self.edge_refinement is None or self._guide is None:
            return logits > self.model.mask_threshold
        assert self.original_size is not None
        radius = self.edge_refinement.radius_for(max(self.original_size), self.model.image_size)
        threshold = self.model.mask_threshold
        shifted = logits if threshold == 0 else logits - threshold  # refine_masks cuts at 0
        settings = self.edge_refinement
        return refine_masks(shifted, self._guide, radius, settings.eps, settings.subsample)

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: Outputs = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prediction with prompts already in the input frame.

        Args:
            point_coords: (B, N, 2) xy input-frame pixels; point_labels: (B, N).
            boxes: (B, 4) xyxy input-frame pixels.
            mask_input: (B, 1, 256, 256) logits.

        Returns masks (B, C, H, W) (bool, or logits), iou (B, C), low-res logits
        (B, C, 256, 256).
        """
        low_res, iou = self.predict_low_res_torch(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        masks = self.model.postprocess_masks(low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res

    @torch.inference_mode()
    def predict_low_res_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: Outputs = True,
        skip_below_iou: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `predict_torch` but stops before upscaling: low-resolution logits
        (B, C, 4h, 4w) covering the padded input square, and IoU predictions (B, C).

        Callers that filter candidates (automatic mask generation) upscale only the
        survivors, with `model.postprocess_masks(logits, input_size, original_size)`.
        With `skip_below_iou`, a prompt whose C predicted IoUs are all at or below it gets
        -inf logits instead of computed ones (the decoder skips most of its work).
        """
        self._require_image()
        points = None
        if point_coords is not None:
            if point_labels is None:
                raise PromptError("point_coords were given without point_labels")
            points = (point_coords, point_labels)
        with self._autocast():
            low_res, iou = self._decode(points, boxes, mask_input, multimask_output, skip_below_iou)
        return low_res.float(), iou.float()

    def _decode(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: Outputs,
        skip_below_iou: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder + mask decoder on the current embedding: (B, C, 4h, 4w), (B, C)."""
        prompt_encoder = self.model.prompt_encoder
        sparse, dense = prompt_encoder(points, boxes, mask_input)
        image_pe = prompt_encoder.get_dense_pe()
        image_side = None
        if mask_input is None:
            if self._image_side is None:
                _, no_mask = prompt_encoder(None, None, None)  # (1, C, h, w)
                self._image_side = self.model.mask_decoder.image_side(
                    self.features, image_pe, no_mask
                )
            image_side = self._image_side
        return self.model.mask_decoder(
            self.features, image_pe, sparse, dense, multimask_output, image_side, skip_below_iou
        )

    # ---- several images ------------------------------------------------------------------

    def predict_batch(
        self,
        images: Sequence[Any],
        prompts: Sequence[dict[str, Any]],
        multimask_output: Outputs = True,
        return_logits: bool = False,
        image_format: str = "RGB",
    ) -> list[Prediction]:
        """Encode several images in one encoder batch, then answer one prompt dict per image.

        Each prompt dict takes `predict`'s keyword arguments (point_coords, point_labels, box,
        mask_input). Returns one `predict`-style tuple per image. The current image is left
        set to the last one.
        """
        if len(images) != len(prompts):
            raise PromptError(f"got {len(images)} images but {len(prompts)} prompt dicts")
        if not images:
            return []
        rgbs = [as_rgb_array(image, image_format) for image in images]
        size = self.model.image_size
        batch = torch.zeros((len(rgbs), 3, size, size), dtype=torch.float32, device=self.device)
        input_sizes = []
        for i, rgb in enumerate(rgbs):
            resized = torch.as_tensor(resize_image(np.ascontiguousarray(rgb), size))
            h, w = resized.shape[:2]
            input_sizes.append((h, w))
            batch[i] = self.model.preprocess(resized.permute(2, 0, 1)[None].to(batch))[0]
        with torch.inference_mode(), self._autocast(self.encoder_dtype()):
            embeddings = self.model.image_encoder(batch).float()
        results = []
        for rgb, embedding, prompt in zip(rgbs, embeddings, prompts, strict=True):
            self.set_embedding(embedding[None], rgb.shape[:2], rgb)
            results.append(
                self.predict(
                    **prompt, multimask_output=multimask_output, return_logits=return_logits
                )
            )
        return results
