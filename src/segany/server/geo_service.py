"""The map service of a server worker: SamGIS's `/infer_samgis` over the worker's model,
embedding cache and compute thread, its tiles cached in DATA/tiles. Made once at start-up
and held in the app's state like the project and the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segany.server.inference import ModelService
from segany.server.settings import ServerSettings

if TYPE_CHECKING:
    from segany.geo.samgis import SamgisService


def make_geo_service(settings: ServerSettings, model: ModelService) -> SamgisService | None:
    """The worker's SamgisService, or None without the geo extra (the map routes then answer
    501 saying what to install)."""
    try:
        from segany.geo.samgis import SamgisService
        from segany.geo.tiles import TileFetcher
    except ModuleNotFoundError:
        return None
    fetcher = TileFetcher(
        settings.data_dir / "tiles",
        settings.limits.tiles,
        settings.tile_timeout,
        max_bytes=settings.cache_budget.tiles_disk,
    )
    return SamgisService(
        model.model,
        model.cache,
        model.weights_id,
        model.compute,  # every forward pass of the process, in turn
        fetcher,
        settings.tile_url,
    )
