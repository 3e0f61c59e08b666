"""prediction inputs by reference: a batch job's logged rows point at its input's blob

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("inputs_columns", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_prediction_files_inputs_sha256_blobs"),
            "blobs",
            ["inputs_sha256"],
            ["sha256"],
        )
        batch_op.create_index(
            batch_op.f("ix_prediction_files_inputs_sha256"), ["inputs_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_files_inputs_sha256"))
        batch_op.drop_constraint(
            batch_op.f("fk_prediction_files_inputs_sha256_blobs"), type_="foreignkey"
        )
        batch_op.drop_column("inputs_columns")
        batch_op.drop_column("inputs_sha256")
