"""XYZ map tiles: sources (xyzservices provider names or URL templates) and a fetcher that gets
many tiles at once, through an on-disk cache, within a limit on tiles per request.

    source = resolve_source("OpenStreetMap.Mapnik")
    fetcher = TileFetcher(Path("segany-data/tiles"), max_tiles=100)
    tiles = fetcher.fetch(source, [(15, 17000, 11000), (15, 17001, 11000)])  # {(z, x, y): RGB}

Every failure of the tile server (an HTTP error, a timeout, a body that is not an image) raises
`TileError` naming the tile's URL; asking for more tiles than `max_tiles` raises `ExtentError`.
"""

from __future__ import annotations

import hashlib
import io
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import segany
from segany.cache.folder import BoundedFolder
from segany.geo.errors import ExtentError, TileError
from segany.geo.projection import MAX_ZOOM, TILE_SIZE

TileId = tuple[int, int, int]  # (z, x, y)

# Tile servers ask for an identifying User-Agent (the OSM tile usage policy requires one).
USER_AGENT = f"segany/{segany.__version__} (SamGIS-compatible map service)"
MAX_TILE_BYTES = 8 << 20  # a larger answer is not a map tile


@dataclass(frozen=True)
class TileSource:
    """A tile layer. url: template with {z}, {x}, {y} (tile column x east, row y south);
    name: the provider's name, or "custom" for a template; zooms outside min_zoom..max_zoom
    are refused before any request."""

    name: str
    url: str
    attribution: str = ""
    min_zoom: int = 0
    max_zoom: int = MAX_ZOOM

    def tile_url(self, z: int, x: int, y: int) -> str:
        # str.replace, not str.format: templates may hold other braces (query strings).
        return self.url.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))

    def check_zoom(self, zoom: int) -> None:
        if not self.min_zoom <= zoom <= self.max_zoom:
            raise ExtentError(
                f"{self.name} has tiles for zoom {self.min_zoom}..{self.max_zoom}, not {zoom}"
            )


def is_template(text: str) -> bool:
    """Whether `text` is a URL template rather than a provider name."""
    return "://" in text or "{x}" in text


def template_source(url: str, name: str = "custom") -> TileSource:
    """A source from a URL template: http(s), with {z}, {x} and {y}; `{s}` becomes the first
    subdomain "a" and `{r}` (retina suffix) is dropped, as Leaflet does by default."""
    url = url.replace("{s}", "a").replace("{r}", "")
    missing = [part for part in ("{z}", "{x}", "{y}") if part not in url]
    if missing or not url.startswith(("http://", "https://")):
        raise ExtentError(
            f"a tile URL template must be http(s) with {{z}}, {{x}} and {{y}}, e.g. "
            f"http://127.0.0.1:9000/{{z}}/{{x}}/{{y}}.png; got {url!r}"
        )
    return TileSource(name=name, url=url)


def provider_source(name: str) -> TileSource:
    """A source from an xyzservices provider name: a dotted path ("OpenStreetMap.Mapnik"), a
    group ("OpenStreetMap": its first provider) or anything `query_name` matches
    ("openstreetmap mapnik"). `ExtentError` for unknown names and providers needing a key."""
    import xyzservices
    import xyzservices.providers

    provider = xyzservices.providers
    try:
        for part in name.split("."):
            provider = provider[part]
    except (KeyError, TypeError):
        try:
            provider = xyzservices.providers.query_name(name)
        except ValueError:
            raise ExtentError(
                f"unknown tile source {name!r}: use an xyzservices provider name such as "
                "'OpenStreetMap.Mapnik' or 'Esri.WorldImagery'"
            ) from None
    while not isinstance(provider, xyzservices.TileProvider):  # a group: its first provider
        provider = next(iter(provider.values()))
    if provider.requires_token():
        raise ExtentError(f"tile source {provider.name} needs an API key, which segany lacks")
    url = provider.build_url(x="{x}", y="{y}", z="{z}")
    return TileSource(
        name=provider.name,
        url=url,
        attribution=str(provider.get("attribution", "")),
        min_zoom=int(provider.get("min_zoom", 0)),
        max_zoom=int(provider.get("max_zoom", MAX_ZOOM)),
    )


def resolve_source(source: str, override: str | None = None) -> TileSource:
    """The tile source for `source` (a provider name or a URL template); `override` (a URL
    template, e.g. `segany serve --tile-url`) replaces every source, keeping the asked name."""
    if override:
        return template_source(override, name=source or "custom")
    if is_template(source):
        return template_source(source)
    return provider_source(source)


class TileFetcher:
    """Fetches tiles concurrently, each through the on-disk cache.

    cache_dir: tiles are kept there as fetched (one folder per URL template), reused for
        `max_age_s` seconds (since fetched); None caches nothing.
    max_bytes: bound on the cached tiles' files, least recently used deleted first (shared by
        the processes using `cache_dir`); None: no bound.
    max_tiles: most tiles one `fetch` may ask for (bounds the memory and time of a request).
    timeout_s: per tile (connect and each read); workers: concurrent downloads.
    Thread-safe: one fetcher serves every request of a server.
    """

    def __init__(
        self,
        cache_dir: Path | str | None,
        max_tiles: int = 100,
        timeout_s: float = 10.0,
        workers: int = 8,
        max_age_s: float = 7 * 86400,
        max_bytes: int | None = None,
    ) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._folder = None if cache_dir is None else BoundedFolder(self.cache_dir, max_bytes)
        self.max_tiles = max_tiles
        self.timeout_s = timeout_s
        self.workers = workers
        self.max_age_s = max_age_s

    def check_count(self, count: int, what: str = "this extent") -> None:
        """`ExtentError` naming the limit when `count` tiles are more than allowed."""
        if count > self.max_tiles:
            raise ExtentError(
                f"{what} needs {count} map tiles, over the limit of {self.max_tiles} tiles per "
                "request: choose a smaller extent or a lower zoom"
            )

    def fetch(self, source: TileSource, tiles: list[TileId]) -> dict[TileId, np.ndarray]:
        """Each tile as a (256, 256, 3) uint8 RGB array (other sizes are resized to 256).
        Raises the first `TileError` and stops starting downloads once one failed."""
        self.check_count(len(tiles))
        if not tiles:
            return {}
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(tiles)))
        try:
            futures = {pool.submit(self.fetch_one, source, tile): tile for tile in tiles}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    raise future.exception()
            return {futures[future]: future.result() for future in futures}
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def fetch_one(self, source: TileSource, tile: TileId) -> np.ndarray:
        """One tile, from the cache when it is there and fresh, else from the server."""
        url = source.tile_url(*tile)
        path = self._cache_path(source, tile)
        if path is not None:
            cached = self._cached(path, url)
            if cached is not None:
                return cached
        data = self._download(url)
        pixels = decode_tile(data, url)
        if path is not None:
            self._folder.write(path, lambda temporary: temporary.write_bytes(data))
        return pixels

    def _cached(self, path: Path, url: str) -> np.ndarray | None:
        """The cached tile at `path` when it is there and fresh (its modification time is when
        it was fetched: reads leave it alone), else None."""
        try:
            fresh = time.time() - path.stat().st_mtime < self.max_age_s
        except FileNotFoundError:  # never fetched, or evicted
            return None
        data = self._folder.read_bytes(path) if fresh else None
        if data is None:
            return None
        try:
            return decode_tile(data, url)
        except TileError:
            return None  # a damaged cache entry: fetched again, and replaced

    def _download(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data = response.read(MAX_TILE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise TileError(
                f"the tile server answered {error.code} {error.reason} for {url}", url
            ) from None
        except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
            message = f"the tile server timed out after {self.timeout_s:g} s: {url}"
            raise TileError(message, url) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                message = f"the tile server timed out after {self.timeout_s:g} s: {url}"
            else:
                message = f"cannot reach the tile server for {url}: {reason}"
            raise TileError(message, url) from None
        except OSError as error:  # connection reset mid-body, and the like
            raise TileError(f"fetching {url} failed: {error}", url) from None
        if len(data) > MAX_TILE_BYTES:
            raise TileError(f"the tile at {url} is over {MAX_TILE_BYTES >> 20} MiB", url)
        return data

    def _cache_path(self, source: TileSource, tile: TileId) -> Path | None:
        if self.cache_dir is None:
            return None
        # One folder per template: the same z/x/y of two sources never meet.
        folder = hashlib.sha256(source.url.encode()).hexdigest()[:16]
        z, x, y = tile
        return self.cache_dir / folder / str(z) / str(x) / f"{y}.tile"


def decode_tile(data: bytes, url: str) -> np.ndarray:
    """A tile's bytes (PNG, JPEG, WebP) as a (256, 256, 3) uint8 RGB array; `TileError`
    naming `url` when they are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 16 * TILE_SIZE * TILE_SIZE:
                raise TileError(f"the tile at {url} is {image.width}x{image.height} px", url)
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise TileError(f"the tile at {url} is not an image ({error})", url) from None
    if rgb.size != (TILE_SIZE, TILE_SIZE):  # 512 px (retina) tiles: the 256 px grid still
        rgb = rgb.resize((TILE_SIZE, TILE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)
