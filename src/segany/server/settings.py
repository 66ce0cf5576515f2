"""What one `segany serve` runs with: model, folders, database, limits and access. A frozen
dataclass that travels to uvicorn's worker processes as JSON in one environment variable."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from segany.errors import ConfigError
from segany.project.config import DEFAULT_IMAGE_PIXELS, ProjectConfig
from segany.registry import DEFAULT_MODEL
from segany.server.cache_budget import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES, CacheBudget

SETTINGS_ENV = "SEGANY_SERVER_SETTINGS"
TOKEN_ENV = "SEGANY_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for; beyond them the answer is a 4xx."""

    upload_bytes: int = 64 * 2**20  # an upload larger than this is refused (413)
    json_bytes: int = 2 * 2**20  # any other request body (JSON) larger than this: 413
    image_pixels: int = DEFAULT_IMAGE_PIXELS  # decompression bombs: refused before decoding
    points: int = 1_000  # prompt points per predict request
    page: int = 500  # images per list page
    tiles: int = 100  # map tiles per /infer_samgis extent (100 tiles: about 2560 x 2560 px)
    # Sequences (videos, volumes): refused (413) past these, from the file's headers.
    sequence_frames: int = 10_000
    sequence_frame_pixels: int = 3840 * 2160
    tracking_sessions: int = 2  # sequences tracked at once per worker (each holds its memory)


@dataclass(frozen=True)
class ServerSettings:
    """data_dir: uploaded images, the SQLite database (unless `db_url`), the embedding cache;
    import_roots: the only server folders `POST /api/import` may read (default: none but the
    data dir's `import/`); token: required on every API request when set (it must be set to
    listen beyond loopback); checkpoint None: the model's own weights (`build_sam`'s rule)."""

    data_dir: Path
    model: str = DEFAULT_MODEL
    checkpoint: Path | None = None
    random_weights: bool = False
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    import_roots: tuple[Path, ...] = ()
    cache_memory_bytes: int = DEFAULT_MEMORY_BYTES  # --cache-size, per worker: CacheBudget
    cache_disk_bytes: int = DEFAULT_DISK_BYTES  # --disk-cache-size, DATA's cache folders
    device: str = "cpu"
    threads: int | None = None  # torch threads per worker (None: torch's default)
    pre_encode: bool = True
    edge_refinement: bool = True  # False: plain masks even where the model's spec refines them
    limits: Limits = field(default_factory=Limits)
    tile_url: str | None = None  # map tiles' URL template, replacing every tile source
    tile_timeout: float = 10.0  # seconds per map tile request
    # Host names requests may carry besides the loopback names, IP addresses and the bound
    # address (--allowed-host; ".example.org": it and every name under it; "*": any).
    allowed_hosts: tuple[str, ...] = ()
    # Origins ("https://app.example.org") whose pages may call the API (CORS) and send it
    # state-changing requests (--cors-origin); none: CORS off, same-origin pages only.
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(self.checkpoint).expanduser())
        roots = tuple(Path(r).expanduser().resolve() for r in self.import_roots)
        object.__setattr__(self, "import_roots", roots or (self.data_dir / "import",))
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        for name in ("cache_memory_bytes", "cache_disk_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a byte count >= 0, got {value!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.tile_url is not None and not (
            self.tile_url.startswith(("http://", "https://"))
            and all(part in self.tile_url for part in ("{z}", "{x}", "{y}"))
        ):
            raise ConfigError(
                f"tile_url must be an http(s) URL template with {{z}}, {{x}} and {{y}}, e.g. "
                f"http://127.0.0.1:9000/{{z}}/{{x}}/{{y}}.png; got {self.tile_url!r}"
            )
        self._check_access()
        if self.host not in LOOPBACK and not self.token:
            raise ConfigError(
                f"listening on {self.host} exposes the server beyond this machine: set an "
                f"access token (--token or ${TOKEN_ENV}) first"
            )

    def _check_access(self) -> None:
        from segany.server.host_origin import is_host_pattern, origin_text

        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        for name in self.allowed_hosts:
            if not is_host_pattern(name):
                raise ConfigError(
                    f"allowed host {name!r}: give a bare host name or address (no scheme, port "
                    "or path), e.g. annotate.example.org, .example.org (it and every name "
                    "under it) or 192.168.1.5"
                )
        origins = []
        for origin in self.cors_origins:
            spelled = origin_text(origin)
            parts = urlsplit(origin)
            if spelled is None or parts.path not in ("", "/") or parts.query or "@" in origin:
                raise ConfigError(
                    f"CORS origin {origin!r}: give an origin, scheme://host[:port] without a "
                    "path, e.g. https://app.example.org or http://localhost:3000 ('*' is not "
                    "allowed: every site could then drive this server)"
                )
            origins.append(spelled)
        object.__setattr__(self, "cors_origins", tuple(origins))
        if self.token is not None and any(c.isspace() for c in self.token):
            raise ConfigError("the access token must not contain spaces or other white space")

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'segany.db'}"

    @property
    def project(self) -> ProjectConfig:
        """The project this server annotates (database, image folder, import roots)."""
        return ProjectConfig(
            self.data_dir, self.db_url, self.import_roots, self.limits.image_pixels
        )

    @property
    def cache_budget(self) -> CacheBudget:
        """The memory and disk cache bounds, shared out between the stores."""
        return CacheBudget.split(self.cache_memory_bytes, self.cache_disk_bytes)

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        data = json.loads(text)
        data["limits"] = Limits(**data["limits"])
        data["import_roots"] = tuple(data["import_roots"])
        for name in ("allowed_hosts", "cors_origins"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)

    @classmethod
    def from_environment(cls) -> ServerSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise ConfigError(f"${SETTINGS_ENV} is not set: start the server with `segany serve`")
        return cls.from_json(text)
