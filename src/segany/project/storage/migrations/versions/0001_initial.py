"""The initial schema: images, categories and annotations.

Written by hand to match `segany.project.storage.models`; tests/test_storage.py checks that
Alembic's autogenerate finds no difference between the two. Every name is wrapped in op.f() so
that the models' naming convention, which Alembic also applies here, leaves it as written.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"])
    op.create_index(op.f("ix_images_position"), "images", ["position"])

    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("color", sa.String(7), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_categories_name")),
    )

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(32), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("rle_counts", sa.Text(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("area", sa.Integer(), nullable=False),
        sa.Column("bbox_x", sa.Double(), nullable=False),
        sa.Column("bbox_y", sa.Double(), nullable=False),
        sa.Column("bbox_w", sa.Double(), nullable=False),
        sa.Column("bbox_h", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_annotations_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_annotations_category_id_categories"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "source IN ('manual', 'semi-auto', 'auto')", name=op.f("ck_annotations_source")
        ),
    )
    op.create_index(op.f("ix_annotations_image_id"), "annotations", ["image_id"])
    op.create_index(op.f("ix_annotations_category_id"), "annotations", ["category_id"])


def downgrade() -> None:
    op.drop_table("annotations")
    op.drop_table("categories")
    op.drop_table("images")
