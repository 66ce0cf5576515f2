"""Helpers shared by the repository modules: committing, fetching and deleting by id, the
UNSET marker."""

from __future__ import annotations

import enum
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, delete, inspect, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segany.errors import ConflictError, NotFoundError
from segany.project.storage.models import Annotation, Base, Image

Row = TypeVar("Row", bound=Base)


class Unset(enum.Enum):
    """Marks an argument that was not given, where None is a value (e.g. "no category")."""

    UNSET = "UNSET"


UNSET = Unset.UNSET


def commit(session: Session, conflict: str) -> None:
    """Commit, so that the write is durable before the caller acknowledges it; a constraint
    violation rolls back and becomes ConflictError(``conflict``)."""
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise ConflictError(conflict) from error


def get_or_raise(session: Session, model: type[Row], row_id: object) -> Row:
    """The row of ``model`` with primary key ``row_id``; NotFoundError when there is none."""
    row = session.get(model, row_id)
    if row is None:
        raise _not_found(model, row_id)
    return row


def delete_or_raise(session: Session, model: type[Base], row_id: object) -> None:
    """Delete the row of ``model`` with primary key ``row_id`` and commit; NotFoundError when
    there is none (also when another process deleted it a moment ago). The database's ON DELETE
    rules handle the rows that refer to it."""
    result = session.execute(delete(model).where(model.id == row_id))
    if result.rowcount == 0:
        session.rollback()
        raise _not_found(model, row_id)
    commit(session, f"{model.__name__.lower()} {row_id!r} could not be deleted")


def _not_found(model: type[Base], row_id: object) -> NotFoundError:
    return NotFoundError(f"there is no {model.__name__.lower()} with id {row_id!r}")


def cached_annotations(session: Session, column: str, value: object) -> list[Annotation]:
    """The annotations this session holds whose ``column`` is ``value``, found without loading
    anything (an expired one would be refreshed, or raise if gone): the copies to fix after the
    database's ON DELETE rules changed their rows behind the ORM's back."""
    return [
        row
        for row in list(session.identity_map.values())
        if isinstance(row, Annotation) and inspect(row).dict.get(column) == value
    ]


def after_in_order(position: int, image_id: str) -> ColumnElement[bool]:
    """Images after (position, id) in the annotator's order (keyset pagination: no OFFSET scan,
    and stable while images are added)."""
    return or_(Image.position > position, and_(Image.position == position, Image.id > image_id))
