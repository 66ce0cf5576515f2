"""Repository functions for sequences, their objects and the prompts given on their frames.

Every write commits before it returns. Unknown ids raise NotFoundError, an object id taken or
out of 1..255 ConflictError / InvalidValueError (segany.errors). Masks: `sequence_masks.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from segany.errors import InvalidValueError, NotFoundError
from segany.project.storage.categories import get_category
from segany.project.storage.common import UNSET, Unset, commit, delete_or_raise, get_or_raise
from segany.project.storage.sequence_models import (
    MAX_OBJECT_ID,
    SEQUENCE_KINDS,
    Sequence,
    SequenceMask,
    SequenceObject,
    SequencePrompt,
)


@dataclass(frozen=True)
class NewSequence:
    """A sequence to add: its file (or folder) and what opening it told."""

    name: str
    kind: str
    stored_path: str
    sha256: str
    frame_count: int
    width: int
    height: int
    fps: float | None = None
    axis: int | None = None


def add_sequence(session: Session, new: NewSequence) -> Sequence:
    if new.kind not in SEQUENCE_KINDS:
        raise InvalidValueError(f"a sequence's kind is one of {SEQUENCE_KINDS}, not {new.kind!r}")
    if min(new.frame_count, new.width, new.height) < 1:
        raise InvalidValueError(
            f"a sequence needs frames of at least 1 x 1 pixel, got {new.frame_count} frames of "
            f"{new.width} x {new.height}"
        )
    row = Sequence(**new.__dict__)
    session.add(row)
    commit(session, f"sequence {new.name!r} could not be added")
    return row


def get_sequence(session: Session, sequence_id: str) -> Sequence:
    return get_or_raise(session, Sequence, sequence_id)


def find_sequence_by_sha256(session: Session, sha256: str) -> Sequence | None:
    return session.scalars(select(Sequence).where(Sequence.sha256 == sha256).limit(1)).first()


def path_in_use(session: Session, stored_path: str) -> bool:
    """Whether any sequence reads `stored_path` (a file may back several: one per axis)."""
    statement = select(Sequence.id).where(Sequence.stored_path == stored_path).limit(1)
    return session.scalars(statement).first() is not None


def list_sequences(session: Session) -> list[tuple[Sequence, int]]:
    """Every sequence, oldest first, with its number of objects."""
    counts = (
        select(SequenceObject.sequence_id, func.count().label("n"))
        .group_by(SequenceObject.sequence_id)
        .subquery()
    )
    rows = session.execute(
        select(Sequence, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.sequence_id == Sequence.id)
        .order_by(Sequence.created_at, Sequence.id)
    ).all()
    return [(row[0], int(row[1])) for row in rows]


def delete_sequence(session: Session, sequence_id: str) -> Sequence:
    """Delete the sequence with its objects, prompts and masks (ON DELETE CASCADE)."""
    sequence = get_sequence(session, sequence_id)
    delete_or_raise(session, Sequence, sequence_id)
    return sequence


# ---- objects -----------------------------------------------------------------------------------


def list_objects(session: Session, sequence_id: str) -> list[SequenceObject]:
    get_sequence(session, sequence_id)
    return list(
        session.scalars(
            select(SequenceObject)
            .where(SequenceObject.sequence_id == sequence_id)
            .order_by(SequenceObject.object_id)
        )
    )


def get_object(session: Session, sequence_id: str, object_id: int) -> SequenceObject:
    row = session.scalars(
        select(SequenceObject).where(
            SequenceObject.sequence_id == sequence_id, SequenceObject.object_id == object_id
        )
    ).first()
    if row is None:
        get_sequence(session, sequence_id)  # an unknown sequence says so first
        raise NotFoundError(f"sequence {sequence_id} has no object {object_id}")
    return row


def add_object(
    session: Session,
    sequence_id: str,
    *,
    object_id: int | None = None,
    name: str | None = None,
    category_id: int | None = None,
) -> SequenceObject:
    """Add an object; `object_id` None: the lowest free id. Raises InvalidValueError for an id
    outside 1..255 (0 is the background), ConflictError when the id is taken."""
    get_sequence(session, sequence_id)
    taken = {row.object_id for row in list_objects(session, sequence_id)}
    if object_id is None:
        free = [n for n in range(1, MAX_OBJECT_ID + 1) if n not in taken]
        if not free:
            raise InvalidValueError(f"a sequence holds at most {MAX_OBJECT_ID} objects")
        object_id = free[0]
    check_object_id(object_id)
    if category_id is not None:
        get_category(session, category_id)
    row = SequenceObject(
        sequence_id=sequence_id,
        object_id=object_id,
        name=(name or f"object {object_id}")[:200],
        category_id=category_id,
    )
    session.add(row)
    commit(session, f"sequence {sequence_id} already has an object {object_id}")
    return row


def update_object(
    session: Session,
    sequence_id: str,
    object_id: int,
    *,
    name: str | Unset = UNSET,
    category_id: int | None | Unset = UNSET,
) -> SequenceObject:
    row = get_object(session, sequence_id, object_id)
    if name is not UNSET:
        row.name = name[:200]
    if category_id is not UNSET:
        if category_id is not None:
            get_category(session, category_id)
        row.category_id = category_id
    commit(session, f"the category of object {object_id} was deleted meanwhile")
    return row


def delete_object(session: Session, sequence_id: str, object_id: int) -> None:
    """Delete the object with its prompts and masks."""
    row = get_object(session, sequence_id, object_id)
    for model in (SequencePrompt, SequenceMask):
        session.execute(
            delete(model).where(model.sequence_id == sequence_id, model.object_id == object_id)
        )
    session.delete(row)
    commit(session, f"object {object_id} of sequence {sequence_id} could not be deleted")


def check_object_id(object_id: int) -> int:
    if isinstance(object_id, bool) or not isinstance(object_id, int):
        raise InvalidValueError(f"an object id is an integer, got {object_id!r}")
    if not 1 <= object_id <= MAX_OBJECT_ID:
        raise InvalidValueError(
            f"object id {object_id} is outside 1..{MAX_OBJECT_ID} (0 is the background in "
            "every output format)"
        )
    return object_id


# ---- prompts ------------------------------------------------------------------------------------


def save_prompt(
    session: Session,
    sequence_id: str,
    object_id: int,
    frame: int,
    points: list[list[float]] | None,
    box: list[float] | None,
    author: str = "",
) -> SequencePrompt:
    """Store (replacing the object's earlier one on that frame) a prompt: points [x, y, label]
    and a box [x0, y0, x1, y1] in frame pixels."""
    get_object(session, sequence_id, object_id)
    session.execute(
        delete(SequencePrompt).where(
            SequencePrompt.sequence_id == sequence_id,
            SequencePrompt.object_id == object_id,
            SequencePrompt.frame == frame,
        )
    )
    row = SequencePrompt(
        sequence_id=sequence_id,
        object_id=object_id,
        frame=frame,
        points=None if points is None else json.dumps(points),
        box=None if box is None else json.dumps(box),
        author=author[:200],
    )
    session.add(row)
    commit(session, f"object {object_id} was deleted meanwhile")
    return row


def list_prompts(session: Session, sequence_id: str) -> list[SequencePrompt]:
    """Every prompt of the sequence, by frame then object."""
    return list(
        session.scalars(
            select(SequencePrompt)
            .where(SequencePrompt.sequence_id == sequence_id)
            .order_by(SequencePrompt.frame, SequencePrompt.object_id)
        )
    )


def frame_prompts(session: Session, sequence_id: str, frame: int) -> list[SequencePrompt]:
    """The prompts given on `frame`, by object."""
    return list(
        session.scalars(
            select(SequencePrompt)
            .where(SequencePrompt.sequence_id == sequence_id, SequencePrompt.frame == frame)
            .order_by(SequencePrompt.object_id)
        )
    )


def prompt_fields(row: SequencePrompt) -> tuple[list | None, list | None]:
    """(points, box) of a stored prompt, as given."""
    points = None if row.points is None else json.loads(row.points)
    box = None if row.box is None else json.loads(row.box)
    return points, box
