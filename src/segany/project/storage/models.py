"""ORM models of an annotation project: images, categories and the mask annotations on them.

The schema is created by the hand-written Alembic migrations in ``migrations/versions``, never by
``metadata.create_all``; a test checks that the two agree column for column.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Where an annotation came from, in the SAM data engine's terms: drawn with prompts by a person,
# pre-filled by the model and then edited, or produced by the automatic mask generator.
SOURCES = ("manual", "semi-auto", "auto")

# Explicit constraint names, so that the migration can name (and a later one drop) each one the
# same way on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def new_image_id() -> str:
    """A 12-character random URL-safe id: unguessable and short enough for a URL path."""
    return secrets.token_urlsafe(9)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the offset (timestamptz) but SQLite stores text without one and hands back
    naive datetimes; this stores UTC and reattaches UTC on the way out, so callers always get
    comparable aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs a timezone-aware datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base holding the project's metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Image(Base):
    """One image of the project, in its EXIF-applied frame (what the predictor sees)."""

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_image_id)
    # The name the user knows the image by (upload or import name), not necessarily unique.
    file_name: Mapped[str] = mapped_column(Text)
    # The copy in the data directory, or the original file for images imported in place.
    stored_path: Mapped[str] = mapped_column(Text)
    # One image per file content (a unique index: concurrent uploads of one file meet here).
    sha256: Mapped[str] = mapped_column(String(64), index=True, unique=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The annotator's order ("next images first"); ties are broken by id.
    position: Mapped[int] = mapped_column(Integer, index=True)
    # The file as it was when hashed: a changed size or mtime means re-hash (imported files
    # are the user's, and may be edited in place). None: not recorded yet.
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)

    def __repr__(self) -> str:
        return f"Image(id={self.id!r}, file_name={self.file_name!r}, {self.width}x{self.height})"


class Category(Base):
    """A label that annotations may carry; names are unique within a project."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # "#rrggbb", or None to let the browser pick one.
    color: Mapped[str | None] = mapped_column(String(7))

    def __repr__(self) -> str:
        return f"Category(id={self.id!r}, name={self.name!r})"


class Annotation(Base):
    """One binary mask on an image, stored as a COCO compressed RLE of the image's frame."""

    __tablename__ = "annotations"
    __table_args__ = (CheckConstraint(f"source IN {SOURCES!r}", name="source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    # pycocotools' compressed counts string; (height, width) is the RLE's "size".
    rle_counts: Mapped[str] = mapped_column(Text)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    # Derived from the RLE on every write, so that lists and exports need not decode masks.
    area: Mapped[int] = mapped_column(Integer)
    bbox_x: Mapped[float] = mapped_column(Double)
    bbox_y: Mapped[float] = mapped_column(Double)
    bbox_w: Mapped[float] = mapped_column(Double)
    bbox_h: Mapped[float] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(16))
    accepted: Mapped[bool] = mapped_column(Boolean)
    author: Mapped[str] = mapped_column(String(200), default="")
    # The image's file changed size since this mask was drawn: it needs a person's look.
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now, onupdate=utc_now)

    @property
    def rle(self) -> dict:
        """The mask as a COCO compressed RLE: ``{"size": [H, W], "counts": str}``."""
        return {"size": [self.height, self.width], "counts": self.rle_counts}

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the mask's bounding box, pixels of the image frame (COCO's XYWH)."""
        return (self.bbox_x, self.bbox_y, self.bbox_w, self.bbox_h)

    def __repr__(self) -> str:
        return f"Annotation(id={self.id!r}, image_id={self.image_id!r}, area={self.area!r})"
