"""predictions: the prediction log's file index and feedback labels

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_files",
        sa.Column("file_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("min_time", sa.BigInteger(), nullable=False),
        sa.Column("max_time", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_prediction_files_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_prediction_files")),
    )
    with op.batch_alter_table("prediction_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prediction_files_model_max_time"), ["model", "max_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_prediction_files_sha256"), ["sha256"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("entity", sa.String(length=256), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "row", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_entity"), ["entity"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_feedback_model_created_at"), ["model", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_model_created_at"))
        batch_op.drop_index(batch_op.f("ix_feedback_entity"))
        batch_op.drop_index(batch_op.f("ix_feedback_created_at"))

    op.drop_table("feedback")
    with op.batch_alter_table("prediction_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_files_sha256"))
        batch_op.drop_index(batch_op.f("ix_prediction_files_model_max_time"))

    op.drop_table("prediction_files")
