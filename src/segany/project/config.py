"""Where one annotation project lives and what it accepts: the data folder, the database, the
server folders it may import from, the largest image it takes. The server's settings and the
CLI's `segany import` / `segany export` both make one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Decompression bombs: an image of more pixels is refused before decoding.
DEFAULT_IMAGE_PIXELS = 60_000_000


@dataclass(frozen=True)
class ProjectConfig:
    """data_dir: uploaded images and (unless `db_url`) the SQLite database; import_roots: the
    only folders an import may read (default: the data dir's `import/`)."""

    data_dir: Path
    db_url: str | None = None
    import_roots: tuple[Path, ...] = ()
    image_pixels: int = DEFAULT_IMAGE_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        roots = tuple(Path(r).expanduser().resolve() for r in self.import_roots)
        object.__setattr__(self, "import_roots", roots or (self.data_dir / "import",))

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'segany.db'}"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"
