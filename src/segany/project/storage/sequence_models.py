"""ORM models of the project's sequences: videos and volumes, the objects tracked through them,
the prompts a person gave on their frames, and every object's mask on every frame.

Frame coordinates are pixels of the sequence's frames (x right, y down), as served by
`GET /api/sequences/{id}/frames/{n}`. Object ids are 1..255: the pixel value of the object in
DAVIS PNGs (0 is the background). Created by migration 0003, never by `create_all`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from segany.project.storage.models import Base, UtcDateTime, new_image_id, utc_now

SEQUENCE_KINDS = ("video", "volume")
# A mask a person prompted on that frame, or one the tracker carried there.
MASK_SOURCES = ("prompt", "tracked")
MAX_OBJECT_ID = 255  # DAVIS PNGs hold one 8-bit object id per pixel


class Sequence(Base):
    """A video or a volume: `frame_count` frames of `height` x `width` pixels."""

    __tablename__ = "sequences"
    __table_args__ = (CheckConstraint(f"kind IN {SEQUENCE_KINDS!r}", name="kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_image_id)
    name: Mapped[str] = mapped_column(Text)  # the upload's or the imported path's name
    kind: Mapped[str] = mapped_column(String(16))
    # The file (or frames folder) in the data directory, or where it was imported from.
    stored_path: Mapped[str] = mapped_column(Text)
    # Of the uploaded file (one sequence per content); an imported folder's is of its path.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    frame_count: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Double)
    axis: Mapped[int | None] = mapped_column(Integer)  # a volume's slicing axis, as opened
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)

    def __repr__(self) -> str:
        return f"Sequence(id={self.id!r}, {self.kind}, {self.frame_count} frames)"


class SequenceObject(Base):
    """An object tracked through a sequence: its id (1..255), a name and a category."""

    __tablename__ = "sequence_objects"
    __table_args__ = (
        UniqueConstraint("sequence_id", "object_id", name="uq_sequence_objects_object"),
        CheckConstraint(f"object_id BETWEEN 1 AND {MAX_OBJECT_ID}", name="object_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sequence_id: Mapped[str] = mapped_column(
        ForeignKey("sequences.id", ondelete="CASCADE"), index=True
    )
    object_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )


class SequencePrompt(Base):
    """A person's prompt for one object on one frame (the last one given there): points as a
    JSON list of [x, y, label], a box as a JSON [x0, y0, x1, y1]; either may be null."""

    __tablename__ = "sequence_prompts"

    sequence_id: Mapped[str] = mapped_column(
        ForeignKey("sequences.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    points: Mapped[str | None] = mapped_column(Text)
    box: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class SequenceMask(Base):
    """One object's mask on one frame, a COCO compressed RLE of the frame's size. No row: the
    object is not on that frame (or was never tracked there)."""

    __tablename__ = "sequence_masks"
    __table_args__ = (
        CheckConstraint(f"source IN {MASK_SOURCES!r}", name="source"),
        Index("ix_sequence_masks_frame", "sequence_id", "frame"),
    )

    sequence_id: Mapped[str] = mapped_column(
        ForeignKey("sequences.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    rle_counts: Mapped[str] = mapped_column(Text)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    area: Mapped[int] = mapped_column(Integer)
    bbox_x: Mapped[float] = mapped_column(Double)
    bbox_y: Mapped[float] = mapped_column(Double)
    bbox_w: Mapped[float] = mapped_column(Double)
    bbox_h: Mapped[float] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now, onupdate=utc_now)

    @property
    def rle(self) -> dict:
        """The mask as a COCO compressed RLE: ``{"size": [H, W], "counts": str}``."""
        return {"size": [self.height, self.width], "counts": self.rle_counts}

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the mask's box in frame pixels (COCO's XYWH)."""
        return (self.bbox_x, self.bbox_y, self.bbox_w, self.bbox_h)
