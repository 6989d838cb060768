"""Quorum (each approver's approval, how many a request needs) and how it was decided.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "access_requests",
        sa.Column("required_approvals", sa.Integer(), server_default="1", nullable=False),
    )
    op.add_column("access_requests", sa.Column("decided_via", sa.String(length=20), nullable=True))
    op.execute("UPDATE access_requests SET decided_via = 'on_call' WHERE auto_approved")
    op.create_table(
        "approvals",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("approver_slack_id", sa.String(length=64), nullable=False),
        sa.Column(
            "approved_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_requests.id"],
            name=op.f("fk_approvals_request_id_access_requests"),
        ),
        sa.PrimaryKeyConstraint("request_id", "approver_slack_id", name=op.f("pk_approvals")),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_column("access_requests", "decided_via")
    op.drop_column("access_requests", "required_approvals")
