"""schedules and triggers: what starts a pipeline, and each firing claimed once

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_triggers",
        sa.Column("trigger_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cron", sa.String(length=256), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("catch_up", sa.String(length=8), nullable=True),
        sa.Column("max_catch_up", sa.Integer(), nullable=True),
        sa.Column("start_at", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("rule", sa.String(length=256), nullable=True),
        sa.Column("data_param", sa.String(length=256), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("max_runs", sa.Integer(), nullable=True),
        sa.Column("period_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("trigger_id", name=op.f("pk_pipeline_triggers")),
        sa.UniqueConstraint("name", name=op.f("uq_pipeline_triggers_name")),
    )
    op.create_table(
        "pipeline_firings",
        sa.Column("firing_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=256), nullable=False),
        sa.Column("occurrence", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["pipeline_triggers.trigger_id"],
            name=op.f("fk_pipeline_firings_trigger_id_pipeline_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("firing_id", name=op.f("pk_pipeline_firings")),
        sa.UniqueConstraint(
            "trigger_id", "event", name=op.f("uq_pipeline_firings_trigger_id_event")
        ),
    )
    with op.batch_alter_table("pipeline_firings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_firings_trigger_id_created_at"),
            ["trigger_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_firings_status_lease_until"),
            ["status", "lease_until"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_firings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_firings_status_lease_until"))
        batch_op.drop_index(batch_op.f("ix_pipeline_firings_trigger_id_created_at"))
    op.drop_table("pipeline_firings")
    op.drop_table("pipeline_triggers")
