"""Edge refinement: snap a mask's outline to the image's colour edges with a guided filter.

A small model predicts its masks on a coarse grid (segany-tiny-v2: one logit per 4 x 4 input
pixels) and bilinear upsampling leaves their outlines soft and rounded. The guided filter (He,
Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013) fits, in every (2r+1)^2 window,
the mask's probability as a linear function of the pixel's RGB colour, q = a . I + b, and
averages the fits: where the window straddles a colour edge the result follows that edge; in
flat colour it is a smoothing of the probability. Thresholding q at 0.5 gives the refined mask.

Cost: a fixed number of box filters (OpenCV's, O(1) per pixel whatever r) and closed-form 3x3
solves, on the mask's tight box widened by 2r + 1 pixels only: a mask cannot grow further than
the filter's reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segany.errors import ConfigError, ImageError


@dataclass(frozen=True)
class EdgeRefinement:
    """Guided-filter settings. radius: window half-side in *model-input* pixels (scaled to
    the image by original long side / input long side); eps: regularisation of the colour
    fit (colours in [0, 1]): larger ignores weaker edges; subsample: the fits are made on the
    image shrunk this many times (the fast guided filter), 1 for the exact filter."""

    radius: int = 16
    eps: float = 3e-4
    subsample: int = 4

    def __post_init__(self) -> None:
        for name in ("radius", "subsample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"edge refinement {name} must be an int >= 1, got {value!r}")
        if not self.eps > 0:
            raise ConfigError(f"edge refinement eps must be > 0, got {self.eps!r}")

    def radius_for(self, original_long_side: int, input_long_side: int) -> int:
        """The window half-side in original-image pixels."""
        return max(1, round(self.radius * original_long_side / input_long_side))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window of every pixel of an (H, W) float32 array."""
    import cv2

    side = 2 * radius + 1
    return cv2.boxFilter(x, -1, (side, side), borderType=cv2.BORDER_REFLECT)


def guided_filter(
    guide: np.ndarray, source: np.ndarray, radius: int, eps: float, subsample: int = 1
) -> np.ndarray:
    """He et al.'s guided filter with a colour guide; with `subsample` > 1 the fast variant
    (He and Sun, 2015): the per-window linear models are fitted on guide and source shrunk
    `subsample` times (radius shrunk alike), then enlarged and applied to the full-size
    guide, so the output still follows the full-size colour edges.

    Args:
        guide: (H, W, 3) float32 colours in [0, 1].
        source: (H, W) float32, the map to filter (here a mask's probability).
        radius: window half-side in pixels; eps: regularisation of the per-window fit.
    Returns:
        (H, W) float32.
    """
    import cv2

    height, width = source.shape
    small_guide, small_source, small_radius = guide, source, radius
    if subsample > 1:
        size = (max(1, round(width / subsample)), max(1, round(height / subsample)))
        small_guide = cv2.resize(guide, size, interpolation=cv2.INTER_AREA)
        small_source = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        small_radius = max(1, round(radius / subsample))
    coefficients = _linear_models(small_guide, small_source, small_radius, eps)
    if subsample > 1:
        coefficients = [
            cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in coefficients
        ]
    a_r, a_g, a_b, b = coefficients
    return a_r * guide[..., 0] + a_g * guide[..., 1] + a_b * guide[..., 2] + b


def _linear_models(
    guide: np.ndarray, source: np.ndarray, radius: int, eps: float
) -> list[np.ndarray]:
    """The window-averaged coefficients (a_r, a_g, a_b, b) of source ~ a . guide + b, each
    (H, W) float32."""
    red, green, blue = (np.ascontiguousarray(guide[..., c]) for c in range(3))
    mean_r, mean_g, mean_b = _box(red, radius), _box(green, radius), _box(blue, radius)
    mean_p = _box(source, radius)
    # Per-window covariance of the colours (symmetric 3 x 3, regularised) and of colour and p.
    s_rr = _box(red * red, radius) - mean_r * mean_r + eps
    s_rg = _box(red * green, radius) - mean_r * mean_g
    s_rb = _box(red * blue, radius) - mean_r * mean_b
    s_gg = _box(green * green, radius) - mean_g * mean_g + eps
    s_gb = _box(green * blue, radius) - mean_g * mean_b
    s_bb = _box(blue * blue, radius) - mean_b * mean_b + eps
    c_r = _box(red * source, radius) - mean_r * mean_p
    c_g = _box(green * source, radius) - mean_g * mean_p
    c_b = _box(blue * source, radius) - mean_b * mean_p
    # a = S^-1 c by cofactors (S is symmetric and positive definite).
    i_rr = s_gg * s_bb - s_gb * s_gb
    i_rg = s_rb * s_gb - s_rg * s_bb
    i_rb = s_rg * s_gb - s_rb * s_gg
    i_gg = s_rr * s_bb - s_rb * s_rb
    i_gb = s_rg * s_rb - s_rr * s_gb
    i_bb = s_rr * s_gg - s_rg * s_rg
    det = s_rr * i_rr + s_rg * i_rg + s_rb * i_rb
    a_r = (i_rr * c_r + i_rg * c_g + i_rb * c_b) / det
    a_g = (i_rg * c_r + i_gg * c_g + i_gb * c_b) / det
    a_b = (i_rb * c_r + i_gb * c_g + i_bb * c_b) / det
    b = mean_p - a_r * mean_r - a_g * mean_g - a_b * mean_b
    return [_box(a_r, radius), _box(a_g, radius), _box(a_b, radius), _box(b, radius)]


def refine_masks(
    logits: np.ndarray, image: np.ndarray, radius: int, eps: float, subsample: int = 1
) -> np.ndarray:
    """Masks from logits with their outlines snapped to the image's colour edges.

    Args:
        logits: (C, H, W) float mask logits at the image's size (threshold 0).
        image: (H, W, 3) uint8 RGB, the image the masks are of.
        radius, eps, subsample: the guided filter's (radius in image pixels).
    Returns:
        (C, H, W) bool. A mask with no positive logit stays empty; pixels farther than
        2 * radius + 1 from the mask's box keep their plain threshold.
    """
    if logits.ndim != 3:
        raise ImageError(f"logits must be (C, H, W), got shape {logits.shape}")
    if image.shape != (*logits.shape[1:], 3) or image.dtype != np.uint8:
        raise ImageError(
            f"the guide must be a ({logits.shape[1]}, {logits.shape[2]}, 3) uint8 image, got "
            f"{image.shape} {image.dtype}"
        )
    masks = logits > 0
    height, width = masks.shape[1:]
    reach = 2 * radius + 1
    boxes = {}  # mask index -> its (y0, y1, x0, x1) widened by the filter's reach
    for index, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size:
            columns = np.flatnonzero(mask.any(axis=0))
            boxes[index] = (
                max(0, rows[0] - reach),
                min(height, rows[-1] + 1 + reach),
                max(0, columns[0] - reach),
                min(width, columns[-1] + 1 + reach),
            )
    if not boxes:
        return masks
    # The colours in [0, 1] once for all the masks, over the union of their boxes.
    top, left = min(b[0] for b in boxes.values()), min(b[2] for b in boxes.values())
    bottom, right = max(b[1] for b in boxes.values()), max(b[3] for b in boxes.values())
    colours = image[top:bottom, left:right].astype(np.float32) / 255
    for index, (y0, y1, x0, x1) in boxes.items():
        crop = logits[index, y0:y1, x0:x1].astype(np.float32)
        probability = 0.5 * (1 + np.tanh(0.5 * crop))  # sigmoid without overflow
        guide = colours[y0 - top : y1 - top, x0 - left : x1 - left]
        refined = guided_filter(guide, probability, radius, eps, subsample)
        masks[index, y0:y1, x0:x1] = refined > 0.5
    return masks
