"""One annotation project on disk: the database (images, categories, annotations) and the image
files of the data directory. The routes and the CLI (`segany import`, `segany export`) go
through it; it holds no model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from segany.cache.locks import file_lock
from segany.engine.jobs import folder_images
from segany.errors import ImageError, InvalidValueError, NotFoundError
from segany.formats.atomic import atomic_file
from segany.project.config import ProjectConfig
from segany.project.image_files import StoredImage, check_image_bytes, read_file, stat_file
from segany.project.storage import repository
from segany.project.storage.database import Database, create_database
from segany.project.storage.migrate import upgrade
from segany.project.storage.models import Image


@dataclass
class ImportSummary:
    added: list[str] = field(default_factory=list)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def stored(image: Image) -> StoredImage:
    return StoredImage(Path(image.stored_path), image.sha256, image.width, image.height)


class Project:
    """The database and the image folder of one data directory."""

    def __init__(self, config: ProjectConfig, database: Database) -> None:
        self.config = config
        self.db = database
        config.images_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def open(cls, config: ProjectConfig) -> Project:
        """Open the project's database, migrating it to the current schema first."""
        config.data_dir.mkdir(parents=True, exist_ok=True)
        database = create_database(config.database_url)
        upgrade(database)
        return cls(config, database)

    def close(self) -> None:
        self.db.dispose()

    # ---- images ---------------------------------------------------------------------------

    def stored_images(self) -> list[StoredImage]:
        """Every image in the annotator's order, as the model needs them."""
        with self.db.session() as session:
            return [stored(image) for image in repository.all_images(session)]

    def image(self, image_id: str) -> Image:
        with self.db.session() as session:
            return repository.get_image(session, image_id)

    def usable_image(self, image_id: str) -> Image:
        """The image, its file checked first against what was recorded (one stat): when its
        size or mtime changed (an imported file edited in place), it is re-hashed and its new
        content, size and dimensions recorded (the annotations flagged `stale` if the
        dimensions changed), so nothing is cached under the old content. `GoneError` (410)
        when the file was moved or deleted."""
        image = self.image(image_id)
        path, name = Path(image.stored_path), f"{image_id} ({image.file_name})"
        status = stat_file(path, name)
        if (image.file_size, image.file_mtime_ns) == (status.st_size, status.st_mtime_ns):
            return image
        data = read_file(path, name)
        checked = check_image_bytes(data, image.file_name, self.config.image_pixels)
        with self.db.session() as session:
            return repository.record_file(
                session,
                image_id,
                sha256=checked.sha256,
                width=checked.width,
                height=checked.height,
                file_size=status.st_size,
                file_mtime_ns=status.st_mtime_ns,
            )

    def add_upload(self, data: bytes, name: str) -> tuple[Image, bool]:
        """Store an uploaded image file (validated) in the data directory. The same bytes
        uploaded again return the existing image (insert-or-get on the content's unique hash,
        also between worker processes). Returns (image, created)."""
        checked = check_image_bytes(data, name, self.config.image_pixels)
        path = self.config.images_dir / f"{checked.sha256[:32]}{checked.suffix}"
        # Writing the file and inserting its row happen under the lock that deletion holds
        # while it removes a row and its file, so a delete never unlinks a file that an upload
        # of the same bytes has just found in place and is about to point a new row at.
        with self._files_lock():
            with self.db.session() as session:
                existing = repository.find_image_by_sha256(session, checked.sha256)
            if existing is not None:
                return existing, False
            if not path.is_file():
                with atomic_file(path) as temporary:
                    temporary.write_bytes(checked.data)
            status = path.stat()
            new = repository.NewImage(
                file_name=_safe_name(name),
                stored_path=str(path),
                sha256=checked.sha256,
                width=checked.width,
                height=checked.height,
                file_size=status.st_size,
                file_mtime_ns=status.st_mtime_ns,
            )
            with self.db.session() as session:
                return repository.add_image_or_get(session, new)

    def delete_image(self, image_id: str) -> Image:
        """Delete the image and its annotations; an uploaded file (in the data directory) goes
        too. Imported files are never touched. Returns the deleted row (for the caller to drop
        what it derived from the image, e.g. its cached embedding)."""
        with self._files_lock():
            with self.db.session() as session:
                image = repository.delete_image(session, image_id)
            path = Path(image.stored_path)
            if path.resolve().is_relative_to(self.config.images_dir.resolve()):
                path.unlink(missing_ok=True)
        return image

    def _files_lock(self):
        """Held while image files and their rows change together (all worker processes)."""
        return file_lock(self.config.data_dir / "images.lock")

    def import_folder(self, folder: str) -> ImportSummary:
        """Add every image under `folder` (searched recursively), in place: the files are not
        copied. Only folders under the configured import roots are allowed."""
        path = self._allowed_import_path(folder)
        summary = ImportSummary()
        # Every image file, whatever its name: a.png and a.jpg are two images here.
        for file, name in folder_images(path):
            if not any(file.resolve().is_relative_to(r) for r in self.config.import_roots):
                summary.errors.append(f"{name}: links outside the import folders; not read")
                continue
            try:
                status = file.stat()  # before the read: a later edit shows as a change
                data = file.read_bytes()
                checked = check_image_bytes(data, name, self.config.image_pixels)
            except (OSError, ImageError) as e:
                summary.errors.append(f"{name}: {e}")
                continue
            with self.db.session() as session:
                if repository.find_image_by_sha256(session, checked.sha256) is not None:
                    summary.skipped += 1
                    continue
                image = repository.add_image(
                    session,
                    file_name=name,
                    stored_path=str(file.resolve()),
                    sha256=checked.sha256,
                    width=checked.width,
                    height=checked.height,
                    file_size=status.st_size,
                    file_mtime_ns=status.st_mtime_ns,
                )
            summary.added.append(image.id)
        return summary

    def _allowed_import_path(self, folder: str) -> Path:
        if "\x00" in folder:
            raise InvalidValueError("the import path contains a NUL byte")
        path = Path(os.path.expanduser(folder)).resolve()
        roots = self.config.import_roots
        if not any(path.is_relative_to(root) for root in roots):
            raise InvalidValueError(
                f"{folder} is outside the import folders this server may read "
                f"({', '.join(map(str, roots))}); start it with --import-root to allow others"
            )
        if not path.is_dir():
            raise NotFoundError(f"import folder not found: {folder}")
        return path

    def iter_export(self) -> Iterator:
        """(image, annotations) pairs of the whole project, streamed from the database."""
        with self.db.session() as session:
            yield from repository.iter_project(session)


def _safe_name(name: str) -> str:
    """An upload's file name without any folder part (never used as a path, but shown)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:255] or "upload"
