"""gates: validation gates of candidate models, linked to runs and evaluations

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gates",
        sa.Column("gate_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("champion_run_id", sa.String(length=32), nullable=True),
        sa.Column("evaluation_id", sa.String(length=32), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_gates_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.evaluation_id"],
            name=op.f("fk_gates_evaluation_id_evaluations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("gate_id", name=op.f("pk_gates")),
    )
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gates_run_id_created_at"), ["run_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_gates_evaluation_id"), ["evaluation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gates_evaluation_id"))
        batch_op.drop_index(batch_op.f("ix_gates_run_id_created_at"))

    op.drop_table("gates")
