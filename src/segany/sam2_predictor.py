"""`Sam2Predictor`: SAM 2's image predictor, with the reference `SAM2ImagePredictor`'s
semantics (sam2 1.1.0) behind `SamPredictor`'s API, so that applications use either model the
same way. `segany.SamPredictor(model)` returns one when `model` is a `Sam2`.

Frames: the *original* frame is the user's image (H, W); the *input* frame is the image
stretched to (S, S), S = model.image_size (SAM 1 pads instead). `predict` takes original-frame
pixels; `predict_torch` and `predict_low_res_torch` take input-frame pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from segany.errors import ImageError, PromptError
from segany.modeling.mask_decoder import Outputs
from segany.modeling.sam2.model import HIGH_RES_FEATS, IMAGE_EMBED, Sam2
from segany.predictor import Prediction, SamPredictor
from segany.predictor_base import check_feature_names, pixels_of_size
from segany.validation import as_rgb_array, check_original_size

Features = dict[str, torch.Tensor]


class Sam2Predictor(SamPredictor):
    """Predict masks for one image (or a batch of images) from point, box and mask prompts.

    Differences from SAM 1's predictor, all as the reference: the image is stretched to a
    square; a box is encoded as two corner points before the clicks; a single mask
    (`multimask_output=False`) falls back to the best of the three when unstable; IoU
    predictions lie in [0, 1]; returned low-resolution logits are clipped to [-32, 32].
    """

    model: Sam2

    def __init__(self, sam_model: Sam2, *args: Any, **kwargs: Any) -> None:
        """Takes `SamPredictor`'s options (autocast, edge refinement)."""
        if not isinstance(sam_model, Sam2):
            raise TypeError(f"Sam2Predictor needs a Sam2 model, got {type(sam_model).__name__}")
        super().__init__(sam_model, *args, **kwargs)

    def reset_image(self) -> None:
        """Forget the current image (or batch of images) and its features."""
        super().reset_image()
        self._batch: Features | None = None  # every image's features, (B, ...) each
        self._original_sizes: list[tuple[int, int]] = []
        self._guides: list[np.ndarray | None] = []  # each image's pixels, for edge refinement
        self._index = 0  # the image of `_batch` that `features` are of
        self.is_batch = False

    reset_predictor = reset_image  # the reference's name

    @property
    def image_features(self) -> Features | None:
        """The current image's features (each (1, C, h, w)), None when no image is set."""
        if self._batch is None:
            return None
        return {name: f[self._index : self._index + 1] for name, f in self._batch.items()}

    # ---- images ----------------------------------------------------------------------------

    def set_image(self, image: Any, image_format: str = "RGB") -> None:
        """Compute the features of an (H, W, 3) uint8 array (RGB or BGR) or a PIL image."""
        rgb = np.ascontiguousarray(as_rgb_array(image, image_format))
        self._encode([rgb])

    def set_image_batch(self, images: Sequence[Any], image_format: str = "RGB") -> None:
        """Compute the features of several images in one encoder batch, for `predict_batch`
        (`predict` then answers for the last one)."""
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or not images:
            raise ImageError("set_image_batch takes a non-empty list of images")
        self._encode([np.ascontiguousarray(as_rgb_array(im, image_format)) for im in images])
        self.is_batch = True

    @torch.inference_mode()
    def _encode(self, rgbs: list[np.ndarray]) -> None:
        self.reset_image()
        batch = []
        for rgb in rgbs:
            tensor = torch.as_tensor(rgb, device=self.device).permute(2, 0, 1)[None]
            batch.append(self.model.preprocess(tensor))  # sizes differ: resized one by one
        with self._autocast(self.encoder_dtype()):
            features = self.model.image_features(torch.cat(batch))
        self._guides = list(rgbs) if self.edge_refinement is not None else []
        self._set_batch(
            {name: f.float() for name, f in features.items()}, [r.shape[:2] for r in rgbs]
        )

    @torch.inference_mode()
    def set_torch_image(
        self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]
    ) -> None:
        """(1, 3, S, S) image already stretched to the input frame, 0..255 values."""
        size = self.model.image_size
        if tuple(transformed_image.shape) != (1, 3, size, size):
            raise ImageError(
                f"expected a (1, 3, {size}, {size}) tensor (the image stretched to the model's "
                f"input square), got shape {tuple(transformed_image.shape)}"
            )
        original = check_original_size(original_image_size)
        self.reset_image()
        image = self.model.preprocess(transformed_image)
        with self._autocast(self.encoder_dtype()):
            features = self.model.image_features(image)
        self._set_batch({name: f.float() for name, f in features.items()}, [original])

    def _set_batch(self, features: Features, original_sizes: list[tuple[int, ...]]) -> None:
        self._batch = features
        self._original_sizes = [(int(h), int(w)) for h, w in original_sizes]
        self._select(len(original_sizes) - 1)
        self.is_image_set = True

    def _select(self, index: int) -> None:
        """Make image `index` of the batch the current one."""
        if index != self._index or self.features is None:
            self._image_side = None
        assert self._batch is not None
        self._index = index
        self.features = self._batch[IMAGE_EMBED][index : index + 1]
        self.original_size = self._original_sizes[index]
        self.input_size = (self.model.image_size, self.model.image_size)
        self._guide = self._guides[index] if index < len(self._guides) else None

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's stride-16 embedding (no_mem_embed added), (1, C, h, w)."""
        self._require_image()
        return self.features

    def get_image_features(self) -> Features:
        """The current image's features, for an embedding cache: "image_embed" (1, C, h, w),
        "high_res_feat_s0" (1, C/8, 4h, 4w), "high_res_feat_s1" (1, C/4, 2h, 2w)."""
        self._require_image()
        features = self.image_features
        assert features is not None
        return features

    def set_image_features(
        self,
        features: Mapping[str, torch.Tensor],
        original_size: tuple[int, int],
        image: Any = None,
    ) -> None:
        """Reuse features from `get_image_features` for an (H, W) image: no encoder pass.
        `image`: its (H, W, 3) uint8 RGB pixels, for edge refinement. `ImageError` when the
        names or shapes are not this model's."""
        expected = {name: (1, *shape) for name, shape in self.model.image_feature_shapes().items()}
        check_feature_names(features, expected, f"keys {sorted(expected)}")
        for name, shape in expected.items():
            value = features[name]
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                got = tuple(getattr(value, "shape", ()))
                raise ImageError(f"features[{name!r}] must be a tensor of shape {shape}, got {got}")
        h, w = check_original_size(original_size)
        self.reset_image()
        if image is not None:
            rgb = pixels_of_size(image, (h, w), "the features are")
            if self.edge_refinement is not None:
                self._guides = [rgb]
        moved = {name: features[name].to(self.device, torch.float32) for name in expected}
        self._set_batch(moved, [(h, w)])

    def set_embedding(
        self, embedding: torch.Tensor, original_size: tuple[int, int], image: Any = None
    ) -> None:
        """Not enough for SAM 2, whose decoder also reads high-resolution features."""
        raise ImageError(
            "a SAM 2 model needs all its image features, not the embedding alone: use "
            "get_image_features() and set_image_features(features, original_size)"
        )

    # ---- prompts ---------------------------------------------------------------------------

    def to_input_frame(self, coords: np.ndarray, normalize_coords: bool = True) -> np.ndarray:
        """(..., 2) xy pixels in the current image's original frame (normalize_coords=False:
        xy in [0, 1] of its width and height) -> float32 xy pixels in the input frame (the
        stretched S x S square), with the reference's float32 arithmetic: the coordinates
        `predict_torch` and `predict_low_res_torch` take."""
        self._require_image()
        assert self.original_size is not None
        h, w = self.original_size
        xy = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
        if normalize_coords:
            xy = xy / torch.tensor([w, h], dtype=torch.float32)
        return (xy * self.model.image_size).numpy()

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: Outputs = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> Prediction:
        """Predict masks for the current image.

        Args:
            point_coords: (N, 2) xy pixels in the original image (normalize_coords=False:
                xy in [0, 1] of its width and height); with several boxes also (B, N, 2).
            point_labels: (N,) or (B, N): 1 foreground, 0 background, -1 ignored.
            box: (4,) xyxy in the same frame as the points, or (B, 4) for B boxes.
            mask_input: (1, S/4, S/4) low-resolution logits from a previous call (256 x 256
                for the official models), or (B, 1, S/4, S/4) with B boxes.
            multimask_output: 3 masks instead of 1; "all": the one mask followed by the 3.
            return_logits: float logits instead of boolean masks.

        Returns:
            masks (C, H, W) bool (or float32 logits), IoU predictions (C,) float32 in [0, 1],
            low-resolution logits (C, S/4, S/4) float32 in [-32, 32]; C is 3, 1 or 4. With
            B > 1 boxes every array gains a leading B axis.
        """
        return self._predict_arrays(
            lambda xy: self.to_input_frame(xy, normalize_coords),
            point_coords,
            point_labels,
            box,
            mask_input,
            multimask_output,
            return_logits,
        )

    def _returned_low_res(self, low_res: torch.Tensor) -> torch.Tensor:
        """`predict_torch` clips its low-resolution logits to [-32, 32], as the reference."""
        return low_res.clamp(-32.0, 32.0)

    def _decode(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: Outputs,
        skip_below_iou: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder and mask decoder on the current image: (B, C, S/4, S/4), (B, C).
        Not clipped; `skip_below_iou` applies with multimask_output True only."""
        prompt_encoder = self.model.sam_prompt_encoder
        decoder = self.model.sam_mask_decoder
        sparse, dense = prompt_encoder(_with_box_corners(points, boxes), None, mask_input)
        image_pe = prompt_encoder.get_dense_pe()
        features = self.image_features
        assert features is not None
        image_side = None
        if mask_input is None:
            if self._image_side is None:
                _, no_mask = prompt_encoder(None, None, None)  # (1, C, h, w)
                self._image_side = decoder.image_side(features[IMAGE_EMBED], image_pe, no_mask)
            image_side = self._image_side
        high_res = (features[HIGH_RES_FEATS[0]], features[HIGH_RES_FEATS[1]])
        out = decoder(
            features[IMAGE_EMBED],
            image_pe,
            sparse,
            dense,
            multimask_output,
            high_res,
            image_side,
            skip_below_iou if multimask_output is True else None,
        )
        return out.masks, out.iou

    # ---- several images --------------------------------------------------------------------

    def predict_batch(
        self,
        point_coords_batch: Sequence[Any] | None = None,
        point_labels_batch: Sequence[Any] | None = None,
        box_batch: Sequence[Any] | None = None,
        mask_input_batch: Sequence[Any] | None = None,
        multimask_output: Outputs = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """The reference's batch call, after `set_image_batch`: one prompt set per image
        (each list has one entry per image, or is None). Returns lists of masks, IoU
        predictions and low-resolution logits, one `predict`-style entry per image.
        (SAM 1's `SamPredictor.predict_batch(images, prompts)` takes other arguments.)
        """
        if not self.is_batch or self._batch is None:
            raise PromptError("no image batch is set: call set_image_batch(images) first")
        results: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        try:
            for i in range(len(self._original_sizes)):
                self._select(i)
                out = self.predict(
                    _entry(point_coords_batch, i),
                    _entry(point_labels_batch, i),
                    _entry(box_batch, i),
                    _entry(mask_input_batch, i),
                    multimask_output,
                    return_logits,
                    normalize_coords,
                )
                for result, array in zip(results, out, strict=True):
                    result.append(array)
        finally:
            self._select(len(self._original_sizes) - 1)
        return results


def _entry(batch: Sequence[Any] | None, index: int) -> Any:
    return None if batch is None else batch[index]


def _with_box_corners(
    points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """SAM 2 encodes a (B, 4) xyxy box as its two corners, labelled 2 and 3, before the
    clicks: (B, 2 + N, 2) coordinates and (B, 2 + N) labels."""
    if boxes is None:
        return points
    corners = boxes.reshape(-1, 2, 2)  # (B, 2, 2) top-left, bottom-right
    corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device)
    corner_labels = corner_labels.expand(corners.shape[0], -1)
    if points is None:
        return corners, corner_labels
    coords = points[0].expand(corners.shape[0], -1, -1)
    labels = points[1].expand(corners.shape[0], -1).to(torch.int)
    return torch.cat([corners, coords], 1), torch.cat([corner_labels, labels], 1)
