"""`SamPredictor`: compute an image's embedding once, then answer prompts in milliseconds.

A drop-in for the reference `segment_anything.SamPredictor` (same methods, shapes and dtypes),
plus several boxes per call, embedding reuse (`set_embedding`) and a multi-image batch call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from segany.errors import ImageError, PromptError
from segany.modeling.mask_decoder import Outputs
from segany.modeling.sam2.model import Sam2
from segany.modeling.two_way_transformer import ImageSide
from segany.predictor_base import (
    Prediction,
    PredictorBase,
    check_feature_names,
    pixels_of_size,
)
from segany.transforms import coords_to_input, preprocess_shape, resize_image
from segany.validation import as_rgb_array, check_original_size

__all__ = ["Prediction", "SamPredictor"]


class SamPredictor(PredictorBase):
    """Predict masks for one image at a time from point, box and mask prompts.

    Coordinates given to `predict` are xy pixels in the original image frame; those given to
    `predict_torch` are already in the model-input frame (see `segany.transforms`).
    For a SAM 2 model, `SamPredictor(model)` is a `segany.sam2_predictor.Sam2Predictor`.
    """

    def __new__(cls, sam_model: Any = None, *args: Any, **kwargs: Any) -> SamPredictor:
        if cls is SamPredictor and isinstance(sam_model, Sam2):
            from segany.sam2_predictor import Sam2Predictor

            return super().__new__(Sam2Predictor)
        return super().__new__(cls)

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
            self._keep_guide(pixels_of_size(image, (h, w), "the embedding is"))

    def get_image_features(self) -> dict[str, torch.Tensor]:
        """The current image's features by name, for an embedding cache (the inverse of
        `set_image_features`): {"image_embed": (1, C, h, w)}."""
        return {"image_embed": self.get_image_embedding()}

    def set_image_features(
        self,
        features: Mapping[str, torch.Tensor],
        original_size: tuple[int, int],
        image: Any = None,
    ) -> None:
        """Reuse `get_image_features` output for an (H, W) image (`set_embedding`)."""
        check_feature_names(features, {"image_embed"}, "the key 'image_embed'")
        self.set_embedding(features["image_embed"], original_size, image)

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
        return self._predict_arrays(
            self.to_input_frame,
            point_coords,
            point_labels,
            box,
            mask_input,
            multimask_output,
            return_logits,
        )

    def to_input_frame(self, coords: np.ndarray) -> np.ndarray:
        """(..., 2) xy pixels in the current image's original frame -> the model-input frame
        (longest side resized to `image_size`), as float64: the coordinates `predict_torch`
        and `predict_low_res_torch` take."""
        self._require_image()
        assert self.original_size is not None
        return coords_to_input(coords, self.original_size, self.model.image_size)

    def _decode(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: Outputs,
        skip_below_iou: float | None,
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
