"""Maps: the SamGIS-compatible `POST /infer_samgis`, the tile source the map page draws, and the
map page itself at /map. Needs the geo extra; without it these routes answer 501 saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from segany.errors import PromptError
from segany.server.routes.common import state

try:
    from segany.geo.errors import ExtentError, TileError
    from segany.geo.samgis import DEFAULT_SOURCE, SamgisRequest, SamgisResponse, SamgisService

    MISSING = None
except ModuleNotFoundError as error:  # the server runs without the geo extra, maps excepted
    MISSING = error

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["maps"])


@router.get("/map", include_in_schema=False)
def map_page() -> FileResponse:
    """The web map: click or drag on it, the model outlines what is there."""
    return FileResponse(STATIC / "map.html")


if MISSING is None:

    @router.post("/infer_samgis", response_model=SamgisResponse)
    def infer_samgis(request: Request, body: SamgisRequest):
        """SamGIS's request: polygons (GeoJSON, EPSG:4326) of what the prompts point at in the
        map extent `bbox` at `zoom`. 422: a bad extent or prompt, or more map tiles than the
        server's limit; 502: the tile server failed (the message names the tile's URL)."""
        limit = state(request).settings.limits.points
        if len(body.prompt) > limit:
            raise PromptError(f"{len(body.prompt)} prompts in one request; at most {limit}")
        try:
            return service(request).infer(body)
        except ExtentError as error:
            raise HTTPException(422, str(error)) from None
        except TileError as error:
            raise HTTPException(502, str(error)) from None

    @router.get("/api/geo/source")
    def tile_source(request: Request, name: str = DEFAULT_SOURCE) -> dict[str, Any]:
        """The tile layer the map page draws for source `name`: URL template ({z}, {x}, {y}),
        attribution and zoom range (the server's --tile-url, when set, for every name)."""
        try:
            source = service(request).source(name)
        except ExtentError as error:
            raise HTTPException(422, str(error)) from None
        return {
            "name": source.name,
            "url": source.url,
            "attribution": source.attribution,
            "min_zoom": source.min_zoom,
            "max_zoom": source.max_zoom,
            "tile_limit": state(request).settings.limits.tiles,
            "fixed": state(request).settings.tile_url is not None,  # --tile-url: one layer
        }

    def service(request: Request) -> SamgisService:
        """The app's SamgisService (made at start-up, `segany.server.geo_service`)."""
        return state(request).samgis

else:

    @router.api_route("/infer_samgis", methods=["POST"], include_in_schema=False)
    @router.api_route("/api/geo/{rest:path}", methods=["GET"], include_in_schema=False)
    def geo_missing() -> None:
        raise HTTPException(
            501, f"maps need {MISSING.name}, which is not installed: pip install 'segany[geo]'"
        )
