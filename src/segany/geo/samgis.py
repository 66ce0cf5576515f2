"""The SamGIS-compatible service: a lat/lng extent of a web map and point / rectangle prompts in
lat/lng -> SAM masks -> GeoJSON polygons in EPSG:4326.

Request and response follow SamGIS (github.com/trincadev/samgis) so that its map page and
scripts work unchanged; what differs is what SamGIS got wrong: no background polygon, one
decoder call per rectangle (SAM takes one box per call), and the embedding of an extent kept in
the shared, bounded embedding cache instead of a dict that never evicts.

    fetcher = TileFetcher(data_dir / "tiles")
    service = SamgisService(model, cache, weights_id, ComputeThread(), fetcher)
    answer = service.infer(SamgisRequest.model_validate(body))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, field_validator, model_validator

from segany.cache import CachedEmbedding, EmbeddingCache, PixelCache, encode, image_key, restore
from segany.compute_thread import ComputeThread, Priority
from segany.geo.errors import ExtentError
from segany.geo.projection import WEB_MERCATOR, check_lnglat, check_zoom
from segany.geo.raster import Extent, ExtentGrid, extent_grid, extent_image
from segany.geo.tiles import TileFetcher, TileSource, is_template, resolve_source
from segany.geo.vector import feature_collection, mask_to_features
from segany.interactive import predict_edit
from segany.predictor import SamPredictor

DEFAULT_SOURCE = "OpenStreetMap.Mapnik"
_KEY_SCHEME = "segany-samgis-extent-v1"


class LatLng(BaseModel):
    """A position in degrees (EPSG:4326) on the Web Mercator map."""

    lat: float
    lng: float

    @model_validator(mode="after")
    def _on_map(self) -> LatLng:
        check_lnglat(self.lng, self.lat)
        return self


class BBox(BaseModel):
    """A lat/lng rectangle by its north-east and south-west corners."""

    ne: LatLng
    sw: LatLng

    @model_validator(mode="after")
    def _not_inverted(self) -> BBox:
        self.extent()
        return self

    def extent(self) -> Extent:
        return Extent(west=self.sw.lng, south=self.sw.lat, east=self.ne.lng, north=self.ne.lat)


class PointPrompt(BaseModel):
    """A click: label 1 includes the point in the object, 0 excludes it."""

    id: int | None = None
    type: Literal["point"]
    data: LatLng
    label: Literal[0, 1]


class RectanglePrompt(BaseModel):
    """A box around the object. SamGIS's page also sends a label, which boxes do not use."""

    id: int | None = None
    type: Literal["rectangle"]
    data: BBox
    label: int | None = None


Prompt = Annotated[PointPrompt | RectanglePrompt, Field(discriminator="type")]


class SamgisRequest(BaseModel):
    """SamGIS's request: the map's extent (`bbox`) at `zoom` of the tile source `source_type`
    (an xyzservices name), and the prompts, all inside the extent."""

    id: str = ""
    bbox: BBox
    prompt: list[Prompt]
    zoom: float
    source_type: str = DEFAULT_SOURCE
    debug: bool = False

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, prompts: list) -> list:
        if not prompts:
            raise ValueError("the prompt list is empty: give at least one point or rectangle")
        return prompts

    @field_validator("zoom")
    @classmethod
    def _whole_zoom(cls, zoom: float) -> float:
        check_zoom(zoom)
        return zoom

    @model_validator(mode="after")
    def _prompts_inside(self) -> SamgisRequest:
        extent = self.bbox.extent()
        for index, prompt in enumerate(self.prompt):
            if prompt.type == "point":
                corners = [prompt.data]
            else:
                corners = [prompt.data.ne, prompt.data.sw]
            for corner in corners:
                if not extent.contains(corner.lng, corner.lat):
                    raise ValueError(
                        f"prompt {index} ({prompt.type} at lat {corner.lat}, lng {corner.lng}) "
                        f"lies outside the bbox (lat {extent.south}..{extent.north}, lng "
                        f"{extent.west}..{extent.east})"
                    )
        return self


class SamgisResponse(BaseModel):
    """SamGIS's first-generation (flat) response, plus whether the embedding was cached."""

    n_predictions: int = Field(description="decoder calls: one per rectangle, else one")
    geojson: dict[str, Any] = Field(description="FeatureCollection in EPSG:4326 (lng, lat)")
    n_shapes_geojson: int = Field(description="features in geojson")
    duration_run: float = Field(description="seconds spent on the request")
    cached_embedding: bool
    message: str = "ok"
    request_id: str = ""
    debug: dict[str, Any] | None = None


@dataclass
class SamgisService:
    """Answers `SamgisRequest`s with one model, shared with the rest of the server.

    cache: the shared embedding cache; an extent's embedding is keyed by (tile URL template,
        zoom, pixel grid, model name, weights_id). compute: the thread every forward pass
        runs on, in turn (the server's; `segany.compute_thread`), where the map's work
        queues at `Priority.JOB`, after the annotator's clicks. tile_url: a URL template
        that replaces every source (`segany serve --tile-url`). allow_templates: whether a
        request's source_type may be a URL template (off for the server: a client must not
        make it fetch any URL).
        pixels: extent images kept in memory, for the masks' edge refinement when the
        embedding comes from the cache.
    """

    model: Any  # segany.modeling.Sam
    cache: EmbeddingCache
    weights_id: str
    compute: ComputeThread
    fetcher: TileFetcher
    tile_url: str | None = None
    allow_templates: bool = False
    pixels: PixelCache = field(default_factory=PixelCache)

    def source(self, source_type: str) -> TileSource:
        if not self.tile_url and is_template(source_type) and not self.allow_templates:
            raise ExtentError(
                "source_type must be an xyzservices provider name such as "
                "'OpenStreetMap.Mapnik'; URL templates are set on the server (--tile-url)"
            )
        return resolve_source(source_type, self.tile_url)

    @torch.inference_mode()
    def infer(self, request: SamgisRequest) -> dict[str, Any]:
        """The response for a validated request. Raises `ExtentError` (the extent needs more
        tiles than allowed, a zoom the source lacks) and `TileError` (a tile failed)."""
        start = time.perf_counter()
        source = self.source(request.source_type)
        grid = extent_grid(request.bbox.extent(), request.zoom)
        source.check_zoom(grid.zoom)
        self.fetcher.check_count(grid.tile_count)  # before any tile is listed
        embedding, cached = self.embedding(source, grid)
        predictor = SamPredictor(self.model)
        pixels = None
        if predictor.edge_refinement is not None:
            pixels = self.pixels.get_or_load(
                self._key(source, grid), lambda: extent_image(grid, source, self.fetcher)
            )
        predictions = self.compute.run_at(
            Priority.JOB, self._decode, predictor, embedding, pixels, grid, request.prompt
        )
        features = []
        for mask, score, ids in predictions:
            properties = {"score": score, "prompt_ids": ids}
            features += mask_to_features(mask, grid.transform, WEB_MERCATOR, properties)
        answer = {
            "n_predictions": len(predictions),
            "geojson": feature_collection(features),
            "n_shapes_geojson": len(features),
            "duration_run": time.perf_counter() - start,
            "cached_embedding": cached,
            "message": "ok",
            "request_id": request.id,
        }
        if request.debug:
            answer["debug"] = {
                "source": source.name,
                "tile_url": source.url,
                "zoom": grid.zoom,
                "tiles": grid.tile_count,
                "image_size": [grid.height, grid.width],
                "transform": list(grid.transform)[:6],
                "crs": WEB_MERCATOR,
            }
        return answer

    def embedding(self, source: TileSource, grid: ExtentGrid) -> tuple[CachedEmbedding, bool]:
        """The extent image's embedding and whether it came from the cache; tiles are fetched
        only on a miss, and one computation serves concurrent requests for the same extent."""
        key = self._key(source, grid)

        def compute() -> CachedEmbedding:
            image = extent_image(grid, source, self.fetcher)  # (H, W, 3) uint8
            self.pixels.put(key, image)
            return self.compute.run_at(Priority.JOB, encode, SamPredictor(self.model), image)

        return self.cache.get_or_compute(key, compute)

    def _key(self, source: TileSource, grid: ExtentGrid) -> str:
        """The extent image's cache key: its tiles' source, zoom and pixel window."""
        described = f"{_KEY_SCHEME}\n{source.url}\n{grid.zoom}\n{grid.left},{grid.top}"
        described += f",{grid.width},{grid.height}"
        return image_key(described.encode(), self.model.spec.name, self.weights_id)

    @torch.inference_mode()
    def _decode(
        self,
        predictor: SamPredictor,
        embedding: CachedEmbedding,
        pixels: np.ndarray | None,
        grid: ExtentGrid,
        prompts: list,
    ) -> list:
        """On the compute thread: (mask (H, W) bool, score, prompt ids) per decoder call,
        every rectangle with all the points, or the points alone when there is no rectangle.
        pixels: the extent's (H, W, 3) image, for edge refinement."""
        restore(predictor, embedding, pixels)
        points = [(i, p) for i, p in enumerate(prompts) if p.type == "point"]
        boxes = [(i, p) for i, p in enumerate(prompts) if p.type == "rectangle"]
        coords = labels = None
        if points:
            lng = np.array([p.data.lng for _, p in points])
            lat = np.array([p.data.lat for _, p in points])
            coords = _sam_pixels(*grid.to_image(lng, lat))  # (N, 2) xy, image pixels
            labels = np.array([p.label for _, p in points], dtype=np.int64)
        point_ids = [_prompt_id(i, p) for i, p in points]
        calls = [] if boxes else [(None, point_ids)]  # (box or None, prompt ids) per call
        for i, p in boxes:
            x, y = grid.to_image(
                np.array([p.data.sw.lng, p.data.ne.lng]), np.array([p.data.ne.lat, p.data.sw.lat])
            )
            box = _sam_pixels(x, y).reshape(4)  # x0, y0, x1, y1: top-left, bottom-right
            calls.append((box, [*point_ids, _prompt_id(i, p)]))
        results = []
        for box, ids in calls:
            # The annotation app's click rule (segany.interactive): one click gets the best of
            # 3 masks; more prompts the output that contradicts fewest clicks.
            masks, scores, _ = predict_edit(predictor, coords, labels, box)
            results.append((masks[0], float(scores[0]), ids))
        return results


def _prompt_id(index: int, prompt: PointPrompt | RectanglePrompt) -> int:
    # The map layer's id when the page sent one, else the prompt's place in the list.
    return prompt.id if prompt.id is not None else index


def _sam_pixels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Continuous image coordinates ((0, 0) the top-left pixel's corner) -> SAM's frame, where
    (i, j) is the centre of pixel (i, j): (N, 2) xy."""
    return np.column_stack([np.asarray(x) - 0.5, np.asarray(y) - 0.5])
