"""What both image predictors share (SAM 1's `SamPredictor`, SAM 2's `Sam2Predictor`): the
autocast and edge-refinement options, thresholding, checking NumPy prompts and turning them
into tensors and the tensor answers back into `predict`'s NumPy tuple, the batched tensor
calls (`predict_torch`, `predict_low_res_torch`) and the checks of reused features."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from segany.devices import computes_bfloat16_natively
from segany.edge_refinement import EdgeRefinement, refine_masks
from segany.errors import ConfigError, ImageError, PromptError
from segany.modeling.mask_decoder import Outputs
from segany.validation import as_rgb_array, check_prompts

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


class PredictorBase:
    """Options, NumPy plumbing and the batched tensor calls of a predictor; subclasses set
    the image (`set_image`, `reset_image`), map prompts to the input frame (`to_input_frame`)
    and run their model's prompt encoder and mask decoder (`_decode`)."""

    model: Any
    is_image_set: bool
    original_size: tuple[int, int] | None
    input_size: tuple[int, int] | None
    _guide: np.ndarray | None

    def __init__(
        self,
        sam_model: Any,
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

    def _keep_guide(self, rgb: np.ndarray) -> None:
        if self.edge_refinement is not None:
            self._guide = rgb  # the caller's array when it is already RGB uint8: not copied

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise PromptError("no image is set: call set_image(image) before predicting")

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

    def reset_image(self) -> None:
        raise NotImplementedError

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
        """Batched prediction with prompts already in the input frame (`to_input_frame`).

        Args:
            point_coords: (B, N, 2) xy input-frame pixels; point_labels: (B, N).
            boxes: (B, 4) xyxy input-frame pixels.
            mask_input: (B, 1, 4h, 4w) low-resolution logits (256 x 256 for SAM).

        Returns masks (B, C, H, W) at the original size (bool, or logits), iou (B, C),
        low-resolution logits (B, C, 4h, 4w) (SAM 2: clipped to [-32, 32]).
        """
        low_res, iou = self.predict_low_res_torch(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        assert self.original_size is not None
        masks = self.model.postprocess_masks(low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, self._returned_low_res(low_res)

    def _returned_low_res(self, low_res: torch.Tensor) -> torch.Tensor:
        """The low-resolution logits `predict_torch` hands back (SAM 2 clips them)."""
        return low_res

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
        (B, C, 4h, 4w) covering the (padded or stretched) input square, never clipped, and
        IoU predictions (B, C).

        Callers that filter candidates (automatic mask generation) upscale only the
        survivors, with `model.postprocess_masks(logits, input_size, original_size)`.
        With `skip_below_iou`, a prompt whose C predicted IoUs are all at or below it gets
        -inf logits instead of computed ones (the decoder skips most of its work; SAM 2 only
        with multimask_output True).
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
        skip_below_iou: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's prompt encoder and mask decoder on the current image, prompts in the
        input frame: low-resolution logits (B, C, 4h, 4w) and IoU predictions (B, C)."""
        raise NotImplementedError

    def _predict_arrays(
        self,
        to_input: Callable[[np.ndarray], np.ndarray],
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
        mask_input: np.ndarray | None,
        multimask_output: Outputs,
        return_logits: bool,
    ) -> Prediction:
        """`predict`'s work: its NumPy prompts in the original frame, checked, `to_input`
        mapping (..., 2) xy there to the input frame. Returns `predict`'s tuple."""
        self._require_image()
        prompts = check_prompts(
            point_coords, point_labels, box, mask_input, multimask_output, self.low_res_size
        )
        batch, device = prompts.batch, self.device
        coords_t = labels_t = boxes_t = masks_t = None
        if prompts.coords is not None:
            coords_t = torch.as_tensor(to_input(prompts.coords), dtype=torch.float, device=device)
            labels_t = torch.as_tensor(prompts.labels, dtype=torch.int, device=device)
            if coords_t.ndim == 2:
                coords_t = coords_t[None].expand(batch, -1, -1)
                labels_t = labels_t[None].expand(batch, -1)
        if prompts.boxes is not None:
            corners = to_input(prompts.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
            boxes_t = torch.as_tensor(corners, dtype=torch.float, device=device)
        if prompts.masks is not None:
            masks_t = torch.as_tensor(prompts.masks, dtype=torch.float, device=device)
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


def check_feature_names(features: Any, names: Any, expected: str) -> None:
    """`ImageError` unless `features` is a mapping with exactly the keys `names`;
    `expected` says which, for the message."""
    if not isinstance(features, Mapping) or set(features) != set(names):
        got = sorted(features) if isinstance(features, Mapping) else type(features).__name__
        raise ImageError(f"features must be a dict with {expected}, got {got}")


def pixels_of_size(image: Any, size: tuple[int, int], of_what: str) -> np.ndarray:
    """`image` as (H, W, 3) uint8 RGB; `ImageError` unless (H, W) is `size`, the image that
    `of_what` (e.g. "the embedding is") was computed from."""
    rgb = as_rgb_array(image)
    h, w = size
    if rgb.shape[:2] != (h, w):
        raise ImageError(
            f"the image is {rgb.shape[1]}x{rgb.shape[0]} but {of_what} of a {w}x{h} image"
        )
    return rgb
