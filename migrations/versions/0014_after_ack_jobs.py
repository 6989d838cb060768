"""Durable after-ack jobs: what a Slack listener acknowledged and left for later.

Listeners wrote nothing before their ack and did the rest on a thread of the same process: a
process that died after an ack lost that work (a submitted request never stored), and that
work, in the process answering Slack, held acks up. Now a listener writes a job row (and
NOTIFY `accessbot_jobs`) before it acks, and any process that runs the job loop does it: the
web process itself, or a worker process of its own (`accessbot serve --role worker`).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "after_ack_jobs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("args", postgresql.JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_after_ack_jobs_ready",
        "after_ack_jobs",
        ["id"],
        postgresql_where=sa.text("failed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_after_ack_jobs_ready", table_name="after_ack_jobs")
    op.drop_table("after_ack_jobs")
