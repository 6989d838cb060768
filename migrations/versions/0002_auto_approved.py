"""Mark requests approved automatically (on call), for the audit trail and the per-user cap.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "access_requests",
        sa.Column("auto_approved", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_index(
        "ix_access_requests_auto_approved",
        "access_requests",
        ["requester_slack_id", "decided_at"],
        postgresql_where=sa.text("auto_approved"),
    )


def downgrade() -> None:
    op.drop_index("ix_access_requests_auto_approved", table_name="access_requests")
    op.drop_column("access_requests", "auto_approved")
