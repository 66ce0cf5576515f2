"""Repository functions for categories: add, get, list, rename or recolour, delete.

Names are unique (ConflictError on a duplicate); deleting a category leaves its annotations
uncategorised (the database's ON DELETE SET NULL). Every write commits before it returns.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from segany.errors import InvalidValueError
from segany.project.storage.common import (
    UNSET,
    Unset,
    cached_annotations,
    commit,
    delete_or_raise,
    get_or_raise,
)
from segany.project.storage.models import Category

MAX_NAME_LENGTH = 200
_COLOR = re.compile(r"#[0-9a-f]{6}")


def add_category(session: Session, name: str, color: str | None = None) -> Category:
    """Add a category named ``name`` (surrounding spaces dropped) with an optional "#rrggbb"
    colour; ConflictError if the name is taken."""
    category = Category(name=_check_name(name), color=_check_color(color))
    session.add(category)
    commit(session, f"a category named {category.name!r} already exists")
    return category


def get_category(session: Session, category_id: int) -> Category:
    """The category ``category_id``; NotFoundError if there is none."""
    return get_or_raise(session, Category, category_id)


def list_categories(session: Session) -> list[Category]:
    """Every category, oldest first (COCO export numbers them in this order)."""
    return list(session.scalars(select(Category).order_by(Category.id)))


def update_category(
    session: Session,
    category_id: int,
    *,
    name: str | None = None,
    color: str | None | Unset = UNSET,
) -> Category:
    """Rename the category and/or change its colour (``color=None`` clears it); ConflictError
    if another category has the new name."""
    category = get_category(session, category_id)
    new_name = None if name is None else _check_name(name)
    new_color = None if color is UNSET else _check_color(color)
    if new_name is not None:
        category.name = new_name
    if color is not UNSET:
        category.color = new_color
    commit(session, f"a category named {category.name!r} already exists")
    return category


def delete_category(session: Session, category_id: int) -> None:
    """Delete the category; its annotations stay, without a category."""
    delete_or_raise(session, Category, category_id)
    # The database set the annotations' category to NULL; make this session's copies agree.
    for annotation in cached_annotations(session, "category_id", category_id):
        set_committed_value(annotation, "category_id", None)


def _check_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH:
        raise InvalidValueError(
            f"a category name must have 1 to {MAX_NAME_LENGTH} characters, got {name!r}"
        )
    return stripped


def _check_color(color: str | None) -> str | None:
    if color is None:
        return None
    if not _COLOR.fullmatch(color.lower()):
        raise InvalidValueError(f'a colour must be "#rrggbb" (hex), got {color!r}')
    return color.lower()
