"""The whole project, image by image, for export (COCO and the like).

Streamed: images are read in keyset batches in list order, each batch with one query for its
annotations, so memory holds one batch however large the project. It is not a snapshot: writes
committed while the export runs may or may not appear in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from segany.errors import InvalidValueError
from segany.project.storage.common import after_in_order
from segany.project.storage.models import Annotation, Image


class ProjectImage(NamedTuple):
    """One image and its annotations (oldest first); unpacks as an (image, annotations) pair."""

    image: Image
    annotations: list[Annotation]


def iter_project(
    session: Session, *, batch_size: int = 100, accepted_only: bool = False
) -> Iterator[ProjectImage]:
    """Every image in list order with its annotations (only the accepted ones with
    ``accepted_only``), ``batch_size`` images per database round trip."""
    if batch_size < 1:
        raise InvalidValueError(f"batch_size must be at least 1, got {batch_size}")
    last: Image | None = None
    while True:
        statement = select(Image).order_by(Image.position, Image.id).limit(batch_size)
        if last is not None:
            statement = statement.where(after_in_order(last.position, last.id))
        images = list(session.scalars(statement))
        if not images:
            return
        by_image: dict[str, list[Annotation]] = {image.id: [] for image in images}
        annotations = select(Annotation).where(Annotation.image_id.in_(by_image))
        if accepted_only:
            annotations = annotations.where(Annotation.accepted.is_(True))
        for annotation in session.scalars(annotations.order_by(Annotation.id)):
            by_image[annotation.image_id].append(annotation)
        for image in images:
            yield ProjectImage(image, by_image[image.id])
        last = images[-1]
