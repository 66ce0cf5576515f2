"""One image per file content, and what is needed to notice an imported file edited in place.

- images.sha256 becomes unique. Projects made before held duplicates when two uploads of the
  same bytes raced; each set is merged into its first image in the annotator's order (position,
  then id): the others' annotations move to it, it stays reviewed if any was, the others go.
- images.file_size and images.file_mtime_ns: the file as it was when hashed, so that a changed
  file is noticed with one stat() and re-hashed (NULL for rows made before: hashed on next use).
- annotations.stale: set when the image's file changed size under the annotation, whose mask
  then no longer fits the picture; cleared when the mask is replaced.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _merge_duplicate_images()
    op.drop_index(op.f("ix_images_sha256"), table_name="images")
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"], unique=True)
    op.add_column("images", sa.Column("file_size", sa.BigInteger(), nullable=True))
    op.add_column("images", sa.Column("file_mtime_ns", sa.BigInteger(), nullable=True))
    op.add_column(
        "annotations",
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("stale")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("file_mtime_ns")
        batch.drop_column("file_size")
    op.drop_index(op.f("ix_images_sha256"), table_name="images")
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"])


def _merge_duplicate_images() -> None:
    connection = op.get_bind()
    images = sa.table(
        "images",
        sa.column("id", sa.String),
        sa.column("sha256", sa.String),
        sa.column("position", sa.Integer),
        sa.column("reviewed", sa.Boolean),
    )
    annotations = sa.table("annotations", sa.column("image_id", sa.String))
    duplicated = sa.select(images.c.sha256).group_by(images.c.sha256).having(sa.func.count() > 1)
    for sha256 in connection.scalars(duplicated).all():
        rows = connection.execute(
            sa.select(images.c.id, images.c.reviewed)
            .where(images.c.sha256 == sha256)
            .order_by(images.c.position, images.c.id)
        ).all()
        keep, others = rows[0].id, [row.id for row in rows[1:]]
        connection.execute(
            annotations.update().where(annotations.c.image_id.in_(others)).values(image_id=keep)
        )
        if any(row.reviewed for row in rows):
            connection.execute(images.update().where(images.c.id == keep).values(reviewed=True))
        connection.execute(images.delete().where(images.c.id.in_(others)))
