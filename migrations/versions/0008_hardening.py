"""Hardening: a request remembers the Slack view it was submitted from, once.

A captured modal submission replayed within Slack's five-minute signature window must not file
a second request: `access_requests.slack_view_id` is unique where set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("access_requests", sa.Column("slack_view_id", sa.String(length=64)))
    op.create_index(
        "uq_access_requests_slack_view_id",
        "access_requests",
        ["slack_view_id"],
        unique=True,
        postgresql_where=sa.text("slack_view_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_access_requests_slack_view_id", table_name="access_requests")
    op.drop_column("access_requests", "slack_view_id")
