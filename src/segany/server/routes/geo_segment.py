"""`POST /api/geo/segment`: a GeoTIFF upload and prompts in map coordinates -> the object's
polygons as GeoJSON (EPSG:4326, RFC 7946), the HTTP face of `segany geo segment`.

The request is multipart/form-data: the raster in the field `file`, the prompts as a JSON
object in the field `prompts`, e.g.
    {"points": [[15.0117, 45.1445, 1]], "crs": "EPSG:4326"}
The raster stays in memory (GDAL's virtual file system) and is not stored in the project.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from segany.compute_thread import Priority
from segany.errors import PromptError
from segany.server.prompt_fields import Box, Points, check_prompt_count
from segany.server.routes.common import state
from segany.server.upload_reader import read_upload

router = APIRouter(tags=["geo"])


class GeoSegmentPrompts(BaseModel):
    """points: [x, y, label] in `crs` (lng, lat for EPSG:4326; label 1 include, 0 exclude);
    box: [xmin, ymin, xmax, ymax] in `crs`; crs: default the raster's; bands: 1-based bands
    shown as RGB (or one as grey); stretch: how other types than uint8 become 0..255; context:
    the largest window (pixels a side) read around the prompts."""

    model_config = ConfigDict(extra="forbid")

    points: Points = []
    box: Box | None = None
    crs: str | None = Field(default=None, max_length=20_000)
    bands: list[int] | None = Field(default=None, max_length=3)
    stretch: Literal["auto", "percent", "minmax", "none"] = "auto"
    context: int = Field(default=1024, ge=64, le=4096)


@router.post("/geo/segment")
async def geo_segment(
    request: Request,
    file: Annotated[UploadFile, File()],
    prompts: Annotated[str, Form()],
) -> dict[str, Any]:
    """The object at the prompts in the uploaded GeoTIFF, as a GeoJSON FeatureCollection in
    EPSG:4326: one Polygon feature per region (holes kept, no background, no nodata), with
    properties score (predicted IoU) and area_m2 (geodesic area)."""
    app = state(request)
    try:
        body = GeoSegmentPrompts.model_validate_json(prompts)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'prompts'}: {item['msg']}"
            for item in e.errors()
        )
        raise PromptError(f"the 'prompts' field is not valid: {problems}") from None
    check_prompt_count(body.points, body.box, app.settings.limits.points)
    data = await read_upload(file, app.settings.limits.upload_bytes)
    return await run_in_threadpool(_segment, app, data, file.filename or "upload", body)


def _segment(app: Any, data: bytes, name: str, body: GeoSegmentPrompts) -> dict[str, Any]:
    try:
        import numpy as np

        from segany.geo.geotiff import GeoRaster
        from segany.geo.segment import GeoPrompts, segment_geotiff
        from segany.geo.vector import feature_collection, mask_to_features
    except ModuleNotFoundError as e:
        raise HTTPException(
            status_code=501,
            detail=f"this server cannot read GeoTIFFs ({e.name} is missing): install "
            "segany[geo] where it runs",
        ) from None
    from segany.predictor import SamPredictor

    points = np.array([p[:2] for p in body.points], dtype=np.float64) if body.points else None
    prompts = GeoPrompts(
        points=points,
        labels=np.array([p[2] for p in body.points]) if body.points else None,
        box=None if body.box is None else np.array(body.box, dtype=np.float64),
        crs=body.crs,
    )
    # Every read, the stretch statistics' included, decodes at most the image pixel limit.
    limit = app.settings.limits.image_pixels
    with GeoRaster.from_bytes(data, name, body.bands, body.stretch, limit) as raster:
        predictor = SamPredictor(app.model.model)
        # The raster is read here; the model's part runs as one slice on the compute thread,
        # after the clicks waiting there (Priority.JOB).
        compute = app.model.compute
        found = segment_geotiff(
            raster,
            predictor,
            prompts,
            body.context,
            run_model=lambda model_part: compute.run_at(Priority.JOB, model_part),
        )
        features = mask_to_features(found.mask, found.transform, raster.crs, {"score": found.score})
    return feature_collection(features)
