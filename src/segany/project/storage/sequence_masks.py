"""Repository functions for the masks of a sequence's objects, frame by frame: store a frame's
results (a prompt's or the tracker's), read a frame, the timeline, stream them all for export.

A mask is stored as a COCO compressed RLE of the frame's size; an object absent from a frame
has no row there. Every write commits before it returns (acknowledged masks are durable).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from segany.errors import InvalidValueError
from segany.project.storage.common import commit
from segany.project.storage.rle import CheckedRle
from segany.project.storage.sequence_models import MASK_SOURCES, SequenceMask
from segany.project.storage.sequences import get_sequence


@dataclass(frozen=True)
class FrameMask:
    """One object's mask on a frame, ready to store: `rle` None means "not on this frame";
    source: "prompt" (a person prompted the object on this frame) or "tracked"."""

    rle: CheckedRle | None
    score: float | None = None
    source: str = "tracked"


def encode_mask(mask: np.ndarray, score: float | None = None, source: str = "tracked") -> FrameMask:
    """An (H, W) bool mask as a `FrameMask` (None when empty), without torch (pycocotools), so
    that it runs on any thread."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise InvalidValueError(f"a frame mask must be (H, W), got shape {mask.shape}")
    if score is not None and not math.isfinite(score):
        score = None
    if not mask.any():
        return FrameMask(None, score, source)
    coded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coded))
    counts = coded["counts"].decode("ascii")
    height, width = mask.shape
    rle = CheckedRle(counts, height, width, int(mask_utils.area(coded)), (x, y, w, h))
    return FrameMask(rle, score, source)


def save_frame(
    session: Session,
    sequence_id: str,
    frame: int,
    masks: Mapping[int, FrameMask],
) -> None:
    """Replace the masks of `masks`' objects on `frame` (other objects' stay), in one
    transaction."""
    for item in masks.values():
        if item.source not in MASK_SOURCES:
            raise InvalidValueError(f"source must be one of {MASK_SOURCES}, got {item.source!r}")
    sequence = get_sequence(session, sequence_id)
    if not masks:
        return
    session.execute(
        delete(SequenceMask).where(
            SequenceMask.sequence_id == sequence_id,
            SequenceMask.frame == frame,
            SequenceMask.object_id.in_(list(masks)),
        )
    )
    for object_id, item in masks.items():
        if item.rle is None:
            continue
        if (item.rle.height, item.rle.width) != (sequence.height, sequence.width):
            raise InvalidValueError(
                f"a mask of {item.rle.height} x {item.rle.width} on a sequence of "
                f"{sequence.height} x {sequence.width} frames"
            )
        x, y, w, h = item.rle.bbox
        session.add(
            SequenceMask(
                sequence_id=sequence_id,
                object_id=int(object_id),
                frame=int(frame),
                rle_counts=item.rle.counts,
                height=item.rle.height,
                width=item.rle.width,
                area=item.rle.area,
                bbox_x=x,
                bbox_y=y,
                bbox_w=w,
                bbox_h=h,
                score=item.score,
                source=item.source,
            )
        )
    commit(session, f"sequence {sequence_id} or one of its objects was deleted meanwhile")


def frame_masks(session: Session, sequence_id: str, frame: int) -> list[SequenceMask]:
    """The masks stored on `frame`, by object id."""
    return list(
        session.scalars(
            select(SequenceMask)
            .where(SequenceMask.sequence_id == sequence_id, SequenceMask.frame == frame)
            .order_by(SequenceMask.object_id)
        )
    )


def timeline(session: Session, sequence_id: str) -> dict[int, list[tuple[int, str]]]:
    """Per object id, the (frame, source) of every frame where it has a mask, frame order."""
    rows = session.execute(
        select(SequenceMask.object_id, SequenceMask.frame, SequenceMask.source)
        .where(SequenceMask.sequence_id == sequence_id)
        .order_by(SequenceMask.object_id, SequenceMask.frame)
    ).all()
    present: dict[int, list[tuple[int, str]]] = {}
    for object_id, frame, source in rows:
        present.setdefault(int(object_id), []).append((int(frame), str(source)))
    return present


def iter_masks(session: Session, sequence_id: str) -> Iterator[tuple[int, list[SequenceMask]]]:
    """(frame, its masks by object id) for every frame that has any, in frame order, streamed
    from the database (memory bounded by one frame's masks)."""
    statement = (
        select(SequenceMask)
        .where(SequenceMask.sequence_id == sequence_id)
        .order_by(SequenceMask.frame, SequenceMask.object_id)
        .execution_options(yield_per=256)
    )
    frame, masks = None, []
    for row in session.scalars(statement):
        if row.frame != frame and masks:
            yield frame, masks
            masks = []
        frame = row.frame
        masks.append(row)
    if masks:
        yield frame, masks
