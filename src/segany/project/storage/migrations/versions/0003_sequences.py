"""Sequences (videos and volumes): the sequences, their objects, prompts and per-frame masks.

Written by hand to match `segany.project.storage.sequence_models` (tests/test_storage.py checks
that autogenerate finds no difference).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _sequence_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["sequence_id"],
        ["sequences.id"],
        name=op.f(f"fk_{table}_sequence_id_sequences"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("axis", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.CheckConstraint("kind IN ('video', 'volume')", name=op.f("ck_sequences_kind")),
    )
    op.create_index(op.f("ix_sequences_sha256"), "sequences", ["sha256"])

    op.create_table(
        "sequence_objects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sequence_id", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequence_objects")),
        _sequence_key("sequence_objects"),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_sequence_objects_category_id_categories"),
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("sequence_id", "object_id", name=op.f("uq_sequence_objects_object")),
        sa.CheckConstraint(
            "object_id BETWEEN 1 AND 255", name=op.f("ck_sequence_objects_object_id")
        ),
    )
    op.create_index(op.f("ix_sequence_objects_sequence_id"), "sequence_objects", ["sequence_id"])
    op.create_index(op.f("ix_sequence_objects_category_id"), "sequence_objects", ["category_id"])

    op.create_table(
        "sequence_prompts",
        sa.Column("sequence_id", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("points", sa.Text(), nullable=True),
        sa.Column("box", sa.Text(), nullable=True),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "sequence_id", "object_id", "frame", name=op.f("pk_sequence_prompts")
        ),
        _sequence_key("sequence_prompts"),
    )

    op.create_table(
        "sequence_masks",
        sa.Column("sequence_id", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
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
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "sequence_id", "object_id", "frame", name=op.f("pk_sequence_masks")
        ),
        _sequence_key("sequence_masks"),
        sa.CheckConstraint(
            "source IN ('prompt', 'tracked')", name=op.f("ck_sequence_masks_source")
        ),
    )
    op.create_index(op.f("ix_sequence_masks_frame"), "sequence_masks", ["sequence_id", "frame"])


def downgrade() -> None:
    op.drop_table("sequence_masks")
    op.drop_table("sequence_prompts")
    op.drop_table("sequence_objects")
    op.drop_table("sequences")
