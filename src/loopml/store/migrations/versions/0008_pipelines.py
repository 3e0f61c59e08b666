"""pipelines: pipeline runs, step runs and their links to tracking runs

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=256), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("executor", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=256), nullable=True),
        sa.Column("resumed_from", sa.String(length=32), nullable=True),
        sa.Column("user", sa.String(length=256), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_pipeline_runs")),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_runs_pipeline_started_at"),
            ["pipeline", "started_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_runs_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "pipeline_step_runs",
        sa.Column("step_run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=256), nullable=False),
        sa.Column("function", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("cached_from", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.Column("output_sha256", sa.String(length=64), nullable=True),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.run_id"],
            name=op.f("fk_pipeline_step_runs_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_run_id", name=op.f("pk_pipeline_step_runs")),
        sa.UniqueConstraint("run_id", "step", name=op.f("uq_pipeline_step_runs_run_id_step")),
    )
    with op.batch_alter_table("pipeline_step_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_step_runs_cache_key"), ["cache_key"], unique=False
        )

    op.create_table(
        "pipeline_run_links",
        sa.Column("tracking_run_id", sa.String(length=32), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["pipeline_step_runs.step_run_id"],
            name=op.f("fk_pipeline_run_links_step_run_id_pipeline_step_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tracking_run_id"],
            ["runs.run_id"],
            name=op.f("fk_pipeline_run_links_tracking_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tracking_run_id", name=op.f("pk_pipeline_run_links")),
    )
    with op.batch_alter_table("pipeline_run_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_run_links_step_run_id"), ["step_run_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_run_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_run_links_step_run_id"))
    op.drop_table("pipeline_run_links")
    with op.batch_alter_table("pipeline_step_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_step_runs_cache_key"))
    op.drop_table("pipeline_step_runs")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_runs_started_at"))
        batch_op.drop_index(batch_op.f("ix_pipeline_runs_pipeline_started_at"))
    op.drop_table("pipeline_runs")
