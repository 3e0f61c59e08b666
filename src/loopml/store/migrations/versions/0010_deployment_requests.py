"""deployment requests: canaries asked of running servers, claimed by exactly one

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_requests",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("check_seconds", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("live_key", sa.String(length=400), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_deployment_requests")),
        sa.UniqueConstraint("live_key", name=op.f("uq_deployment_requests_live_key")),
    )
    with op.batch_alter_table("deployment_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployment_requests_model_requested_at"),
            ["model", "requested_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_deployment_requests_requested_at"), ["requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_requests_requested_at"))
        batch_op.drop_index(batch_op.f("ix_deployment_requests_model_requested_at"))
    op.drop_table("deployment_requests")
