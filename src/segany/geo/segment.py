"""Point and box prompts on a GeoTIFF -> the object's polygons in the raster's CRS.

The model sees a window around the prompts (the whole raster when it is small), never the whole
of a large raster: a window wider than `context` pixels (prompts far apart) is read decimated to
`context` pixels a side, from the raster's overviews when it has them, so memory is that of one
`context`-sized window and the pixels decoded are bounded by the raster's `max_pixels`. Used by
`segany geo segment` and by `POST /api/geo/segment`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from segany.errors import PromptError
from segany.geo.geotiff import GeoRaster
from segany.geo.vector import shapes_in_crs
from segany.geo.windows import decimated_shape, pixel_window
from segany.interactive import predict_edit
from segany.predictor import SamPredictor

# The model sees at most this many raster pixels a side around the prompts (default).
DEFAULT_CONTEXT = 1024


@dataclass(frozen=True)
class GeoPrompts:
    """Prompts in map coordinates.

    points: (N, 2) x/y in `crs` (lng/lat for EPSG:4326), or None; labels: (N,) 1 foreground,
    0 background; box: (4,) xmin, ymin, xmax, ymax in `crs`, or None; crs: any CRS pyproj knows,
    None for the raster's own.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    crs: Any = None


@dataclass(frozen=True)
class GeoMask:
    """The chosen mask and where it lies: mask (h, w) bool over `window` of the raster (nodata
    already removed; (h, w) smaller than the window's size when it was read decimated),
    `transform` the mask's pixel -> raster CRS map, `score` the predicted IoU."""

    mask: np.ndarray
    window: Window
    transform: Affine
    score: float

    @property
    def touches_window_edge(self) -> bool:
        m = self.mask
        return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())

    def polygons(self) -> list[BaseGeometry]:
        """The mask's regions as polygons in the raster's CRS (holes kept, no background)."""
        return shapes_in_crs(self.mask, self.transform)


def prompts_to_pixels(
    raster: GeoRaster, prompts: GeoPrompts
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(points (N, 2), box (4,)) as (col, row) pixels of the raster, each checked to lie on it.
    A box's four corners are moved and their bounding box taken (a CRS may rotate or flip)."""
    points = box = None
    where = (
        f"{raster.name} covers x {{:.10g}}..{{:.10g}}, y {{:.10g}}..{{:.10g}} in "
        f"{'its own CRS' if prompts.crs is None else prompts.crs}"
    )
    if prompts.points is not None:
        points = raster.to_pixels(prompts.points, prompts.crs)
        for given, (col, row) in zip(np.reshape(prompts.points, (-1, 2)), points, strict=True):
            if not _on_raster(raster, col, row):
                raise PromptError(
                    f"point {given[0]:.10g},{given[1]:.10g} lies outside the raster: "
                    + where.format(*_bounds(raster, prompts.crs))
                )
    if prompts.box is not None:
        x0, y0, x1, y1 = np.asarray(prompts.box, dtype=np.float64)
        corners = raster.to_pixels([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], prompts.crs)
        box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])  # (4,) xyxy pixels
        if not all(_on_raster(raster, c, r) for c, r in corners):
            raise PromptError(
                f"box {x0:.10g},{y0:.10g},{x1:.10g},{y1:.10g} reaches outside the raster: "
                + where.format(*_bounds(raster, prompts.crs))
            )
    if points is None and box is None:
        raise PromptError("give at least one point or a box")
    return points, box


def segment_geotiff(
    raster: GeoRaster,
    predictor: SamPredictor,
    prompts: GeoPrompts,
    context: int = DEFAULT_CONTEXT,
    run_model: Callable[[Callable[[], Any]], Any] | None = None,
) -> GeoMask:
    """The best mask for `prompts` (the click rule's first, `segany.interactive.predict_edit`:
    the highest predicted IoU of the 3 multimask outputs for one point or a box, else the
    output that contradicts fewest points), read from a window of `context` pixels a side
    around the prompts (the raster when it is smaller). Prompts spread wider get a wider window,
    read decimated to `context` pixels a side. Nodata pixels are never in the mask.
    `PromptError` for a prompt off the raster, a foreground point on nodata, or a window whose
    read would decode more than the raster's `max_pixels` (checked before reading).
    run_model: runs the model's part (a zero-argument callable: encoder and decoder) and returns
    its result, e.g. on the server's compute thread, while the raster is read here; default:
    here too."""
    points, box = prompts_to_pixels(raster, prompts)
    corners = [p for p in (points, None if box is None else box.reshape(2, 2)) if p is not None]
    col_off, row_off, width, height = pixel_window(
        np.concatenate(corners), raster.width, raster.height, context
    )
    window = Window(col_off, row_off, width, height)
    out_h, out_w = decimated_shape(width, height, context)  # the window itself when it fits
    rgb, valid = raster.read(window, (out_h, out_w))  # (out_h, out_w, 3), (out_h, out_w)
    # Raster pixels -> read pixels: shift to the window, shrink by its decimation per axis.
    offset = np.array([col_off, row_off], dtype=np.float64)
    scale = np.array([width / out_w, height / out_h], dtype=np.float64)
    labels = None
    if points is not None:
        points = (points - offset) / scale  # (N, 2) col, row of the read pixels
        labels = np.asarray(prompts.labels, dtype=np.int64)
        for (col, row), label in zip(points, labels, strict=True):
            r, c = min(int(row), out_h - 1), min(int(col), out_w - 1)
            if label == 1 and not valid[r, c]:
                raise PromptError(
                    f"a foreground point falls on the raster's nodata area (pixel col "
                    f"{round(c * scale[0]) + col_off}, row {round(r * scale[1]) + row_off}), "
                    "where there is nothing to segment"
                )
    if box is not None:
        box = (box - np.tile(offset, 2)) / np.tile(scale, 2)  # (4,) xyxy read pixels

    def model_part() -> tuple[np.ndarray, np.ndarray]:
        predictor.set_image(rgb)
        masks, scores, _ = predict_edit(predictor, points, labels, box)  # the app's click rule
        predictor.reset_image()
        return masks, scores

    masks, scores = model_part() if run_model is None else run_model(model_part)
    transform = raster.window_transform(window, (out_h, out_w))
    return GeoMask(masks[0] & valid, window, transform, float(scores[0]))


def _on_raster(raster: GeoRaster, col: float, row: float) -> bool:
    return bool(
        np.isfinite(col)
        and np.isfinite(row)
        and 0 <= col <= raster.width
        and 0 <= row <= raster.height
    )


def _bounds(raster: GeoRaster, crs: Any) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of the raster in `crs`, in the order the message names them."""
    left, bottom, right, top = raster.bounds_in(crs)
    return left, right, bottom, top
