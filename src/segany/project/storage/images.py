"""Repository functions for images: add, get, find by content, list by page, update, delete.

Every write commits before it returns. Images are listed in the annotator's order: ``position``
ascending, ties broken by id.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from segany.errors import ConflictError, InvalidValueError
from segany.project.storage.common import (
    after_in_order,
    cached_annotations,
    commit,
    delete_or_raise,
    get_or_raise,
)
from segany.project.storage.models import Annotation, Image

MAX_PAGE_SIZE = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class NewImage:
    """An image to add. ``width`` and ``height`` are those of the EXIF-applied frame; without a
    ``position`` the image goes after every other one."""

    file_name: str
    stored_path: str
    sha256: str
    width: int
    height: int
    position: int | None = None
    file_size: int | None = None  # the file's size and mtime when hashed (None: unknown)
    file_mtime_ns: int | None = None


@dataclass(frozen=True)
class ImageSummary:
    """One row of an image list: the image and how many annotations it has (and accepted)."""

    image: Image
    annotation_count: int
    accepted_count: int


@dataclass(frozen=True)
class ImagePage:
    """A page of the image list; ``total`` counts every image that matches the filter."""

    items: list[ImageSummary]
    total: int
    offset: int
    limit: int


def add_images(session: Session, images: Iterable[NewImage]) -> list[Image]:
    """Add several images in one transaction (one disk sync for a whole folder import)."""
    checked = [_check_new(new) for new in images]
    next_position = session.scalar(select(func.coalesce(func.max(Image.position), -1))) + 1
    rows = []
    for new in checked:
        if new.position is None:
            position, next_position = next_position, next_position + 1
        else:
            position = new.position
        rows.append(
            Image(
                file_name=new.file_name,
                stored_path=new.stored_path,
                sha256=new.sha256,
                width=new.width,
                height=new.height,
                position=position,
                reviewed=False,
                file_size=new.file_size,
                file_mtime_ns=new.file_mtime_ns,
            )
        )
    session.add_all(rows)
    commit(session, "an image id clashed with a stored one; add the image again")
    return rows


def add_image(
    session: Session,
    *,
    file_name: str,
    stored_path: str,
    sha256: str,
    width: int,
    height: int,
    position: int | None = None,
    file_size: int | None = None,
    file_mtime_ns: int | None = None,
) -> Image:
    """Add one image (see `NewImage`) and return it, committed, with its new random id.
    ConflictError when an image of the same content (sha256) is already there."""
    new = NewImage(
        file_name, stored_path, sha256, width, height, position, file_size, file_mtime_ns
    )
    return add_images(session, [new])[0]


def add_image_or_get(session: Session, new: NewImage) -> tuple[Image, bool]:
    """Insert-or-get by content: (the new image, True), or (the image that already has
    `new.sha256`, False). Safe against a concurrent insert of the same content (the unique
    index decides; the loser gets the winner's row)."""
    existing = find_image_by_sha256(session, new.sha256)
    if existing is not None:
        return existing, False
    try:
        return add_images(session, [new])[0], True
    except ConflictError:
        existing = find_image_by_sha256(session, new.sha256)
        if existing is None:  # the clash was not the content's: report it as it was
            raise
        return existing, False


def record_file(
    session: Session,
    image_id: str,
    *,
    sha256: str,
    width: int,
    height: int,
    file_size: int,
    file_mtime_ns: int,
) -> Image:
    """Record what an image's file is now (after it was re-hashed): its content hash, upright
    size, and the size and mtime it was hashed at. When the size changed, its annotations are
    flagged `stale` (their masks no longer fit the picture). ConflictError when the new
    content is another image's."""
    image = get_image(session, image_id)
    resized = (image.width, image.height) != (width, height)
    image.sha256, image.width, image.height = sha256.lower(), width, height
    image.file_size, image.file_mtime_ns = file_size, file_mtime_ns
    if resized:
        session.execute(
            update(Annotation).where(Annotation.image_id == image_id).values(stale=True)
        )
    commit(
        session,
        f"image {image_id!r}: its file now holds the same picture as another image of the "
        "project; delete one of the two",
    )
    return image


def get_image(session: Session, image_id: str) -> Image:
    """The image ``image_id``; NotFoundError if there is none."""
    return get_or_raise(session, Image, image_id)


def find_image_by_sha256(session: Session, sha256: str) -> Image | None:
    """The image whose file has this SHA-256 hex digest (one at most: a unique index), or
    None: lets the server notice a second upload of the same file."""
    statement = (
        select(Image)
        .where(Image.sha256 == sha256.lower())
        .order_by(Image.position, Image.id)
        .limit(1)
    )
    return session.scalars(statement).first()


def all_images(session: Session) -> list[Image]:
    """Every image in list order, without counts (e.g. to queue embeddings for them)."""
    return list(session.scalars(select(Image).order_by(Image.position, Image.id)))


def list_images(
    session: Session, *, offset: int = 0, limit: int = 100, reviewed: bool | None = None
) -> ImagePage:
    """Images ``offset`` to ``offset + limit`` in list order, with their annotation counts;
    ``reviewed`` keeps only reviewed (True) or not yet reviewed (False) images."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidValueError(
            f"a page needs offset >= 0 and 1 <= limit <= {MAX_PAGE_SIZE}, "
            f"got offset={offset}, limit={limit}"
        )
    # Correlated counts, so that only the page's images are counted (through the image_id
    # index), not every annotation of the project.
    count = (
        select(func.count(Annotation.id)).where(Annotation.image_id == Image.id).scalar_subquery()
    )
    accepted = (
        select(func.count(Annotation.id))
        .where(Annotation.image_id == Image.id, Annotation.accepted.is_(True))
        .scalar_subquery()
    )
    filters = [] if reviewed is None else [Image.reviewed.is_(reviewed)]
    statement = (
        select(Image, count, accepted)
        .where(*filters)
        .order_by(Image.position, Image.id)
        .offset(offset)
        .limit(limit)
    )
    items = [
        ImageSummary(image, n, n_accepted) for image, n, n_accepted in session.execute(statement)
    ]
    total = session.scalar(select(func.count()).select_from(Image).where(*filters))
    return ImagePage(items, total, offset, limit)


def next_images(
    session: Session, after: str | None = None, *, limit: int = 8, reviewed: bool | None = False
) -> list[Image]:
    """Up to ``limit`` images following image ``after`` (from the start when None) in list
    order, by default only those not yet reviewed: what the annotator shows, or prepares
    embeddings for, next."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidValueError(f"limit must be in 1..{MAX_PAGE_SIZE}, got {limit}")
    statement = select(Image).order_by(Image.position, Image.id).limit(limit)
    if after is not None:
        current = get_image(session, after)
        statement = statement.where(after_in_order(current.position, current.id))
    if reviewed is not None:
        statement = statement.where(Image.reviewed.is_(reviewed))
    return list(session.scalars(statement))


def update_image(
    session: Session, image_id: str, *, reviewed: bool | None = None, position: int | None = None
) -> Image:
    """Mark the image reviewed or not, and/or move it to ``position``; returns it committed."""
    image = get_image(session, image_id)
    if reviewed is not None:
        image.reviewed = bool(reviewed)
    if position is not None:
        image.position = int(position)
    commit(session, f"image {image_id!r} could not be updated")
    return image


def delete_image(session: Session, image_id: str) -> Image:
    """Delete the image and (by the database's ON DELETE CASCADE) its annotations.

    Returns the deleted row, so that the server can remove its stored file.
    """
    image = get_image(session, image_id)
    delete_or_raise(session, Image, image_id)
    # The cascade ran in the database; drop the rows it removed from this session too.
    for annotation in cached_annotations(session, "image_id", image_id):
        session.expunge(annotation)
    return image


def _check_new(new: NewImage) -> NewImage:
    if not new.file_name or not new.stored_path:
        raise InvalidValueError("an image needs a file_name and a stored_path")
    if not _SHA256.fullmatch(new.sha256.lower()):
        raise InvalidValueError(f"sha256 must be 64 hex digits, got {new.sha256!r}")
    if new.width <= 0 or new.height <= 0:
        raise InvalidValueError(f"image size must be positive, got {new.width} x {new.height}")
    return dataclasses.replace(new, sha256=new.sha256.lower())
