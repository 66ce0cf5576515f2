"""Repository functions for annotations: add (one or many), get, list by image, update, delete.

A mask arrives as a COCO compressed RLE ``{"size": [H, W], "counts": str}`` of the image's
(EXIF-applied) frame; its area and box are derived here, so they always agree with the mask.
Every write commits before it returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segany.errors import InvalidValueError
from segany.project.storage.categories import get_category
from segany.project.storage.common import UNSET, Unset, commit, delete_or_raise, get_or_raise
from segany.project.storage.images import get_image
from segany.project.storage.models import SOURCES, Annotation, Image
from segany.project.storage.rle import CheckedRle, check_rle

MAX_AUTHOR_LENGTH = 200


@dataclass(frozen=True)
class NewAnnotation:
    """An annotation to add: the mask, and where it came from (``source`` one of SOURCES)."""

    rle: Mapping[str, Any]
    category_id: int | None = None
    score: float | None = None
    source: str = "manual"
    accepted: bool = True
    author: str = ""


def add_annotations(
    session: Session, image_id: str, annotations: Iterable[NewAnnotation]
) -> list[Annotation]:
    """Add several annotations to one image in one transaction (the automatic generator's
    masks for an image cost one disk sync, not one each)."""
    image = get_image(session, image_id)
    rows = [_new_row(session, image, new) for new in annotations]
    session.add_all(rows)
    commit(session, f"image {image_id!r} or a category was deleted meanwhile; add again")
    return rows


def add_annotation(
    session: Session,
    image_id: str,
    rle: Mapping[str, Any],
    *,
    category_id: int | None = None,
    score: float | None = None,
    source: str = "manual",
    accepted: bool = True,
    author: str = "",
) -> Annotation:
    """Add one annotation (see `NewAnnotation`) and return it, committed, with its new id."""
    new = NewAnnotation(rle, category_id, score, source, accepted, author)
    return add_annotations(session, image_id, [new])[0]


def get_annotation(session: Session, annotation_id: int) -> Annotation:
    """The annotation ``annotation_id``; NotFoundError if there is none."""
    return get_or_raise(session, Annotation, annotation_id)


def list_annotations(session: Session, image_id: str) -> list[Annotation]:
    """The image's annotations, oldest first; NotFoundError for an unknown image."""
    get_image(session, image_id)
    statement = select(Annotation).where(Annotation.image_id == image_id).order_by(Annotation.id)
    return list(session.scalars(statement))


def update_annotation(
    session: Session,
    annotation_id: int,
    *,
    category_id: int | None | Unset = UNSET,
    accepted: bool | None = None,
    rle: Mapping[str, Any] | None = None,
) -> Annotation:
    """Change the category (None: uncategorised), the accepted flag and/or the mask (an edit
    in the browser); returns the annotation committed, with a new ``updated_at``."""
    annotation = get_annotation(session, annotation_id)
    # Everything is checked before anything changes, so that a refused update leaves nothing
    # behind in the session for a later commit to write.
    if category_id is not UNSET and category_id is not None:
        get_category(session, category_id)
    mask = None if rle is None else _check_mask(rle, get_image(session, annotation.image_id))
    if category_id is not UNSET:
        annotation.category_id = category_id
    if accepted is not None:
        annotation.accepted = bool(accepted)
    if mask is not None:
        _set_mask(annotation, mask)
        annotation.stale = False  # a new mask, drawn on the picture as it is now
    commit(session, f"the category of annotation {annotation_id} was deleted meanwhile")
    return annotation


def delete_annotation(session: Session, annotation_id: int) -> None:
    """Delete the annotation; NotFoundError if there is none."""
    delete_or_raise(session, Annotation, annotation_id)


def _new_row(session: Session, image: Image, new: NewAnnotation) -> Annotation:
    if new.source not in SOURCES:
        raise InvalidValueError(f"source must be one of {SOURCES}, got {new.source!r}")
    if new.score is not None and not math.isfinite(new.score):
        raise InvalidValueError(f"score must be a finite number or None, got {new.score!r}")
    if len(new.author) > MAX_AUTHOR_LENGTH:
        raise InvalidValueError(f"author names are at most {MAX_AUTHOR_LENGTH} characters")
    if new.category_id is not None:
        get_category(session, new.category_id)
    row = Annotation(
        image_id=image.id,
        category_id=new.category_id,
        score=None if new.score is None else float(new.score),
        source=new.source,
        accepted=bool(new.accepted),
        author=new.author,
    )
    _set_mask(row, _check_mask(new.rle, image))
    return row


def _check_mask(rle: Mapping[str, Any], image: Image) -> CheckedRle:
    checked = check_rle(rle)
    if (checked.height, checked.width) != (image.height, image.width):
        raise InvalidValueError(
            f"the mask is {checked.height} x {checked.width} but image {image.id!r} is "
            f"{image.height} x {image.width} (height x width, EXIF-applied frame)"
        )
    return checked


def _set_mask(annotation: Annotation, mask: CheckedRle) -> None:
    annotation.rle_counts = mask.counts
    annotation.height, annotation.width = mask.height, mask.width
    annotation.area = mask.area
    annotation.bbox_x, annotation.bbox_y, annotation.bbox_w, annotation.bbox_h = mask.bbox
