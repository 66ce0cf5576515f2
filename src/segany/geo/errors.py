"""Typed errors of the map tools. The server answers `ExtentError` with 422 (a request that
cannot be served as asked) and `TileError` with 502 (the tile server failed us, not the user)."""

from __future__ import annotations

from segany.errors import SeganyError


class GeoError(SeganyError):
    """Base class of the map tools' errors."""


class ExtentError(GeoError, ValueError):
    """An extent, zoom, coordinate or tile source that cannot be used: outside the Web Mercator
    range, inverted, needing more tiles than allowed, or an unknown provider name."""


class TileError(GeoError):
    """A tile could not be fetched or decoded; `url` names the failing tile."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url
