"""Extensions, pending-request expiry and expiry reminders.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "access_requests",
        sa.Column("kind", sa.String(length=20), server_default="access", nullable=False),
    )
    op.add_column("access_requests", sa.Column("extends_grant_id", sa.Uuid(), nullable=True))
    op.add_column(
        "access_requests", sa.Column("pending_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_foreign_key(
        op.f("fk_access_requests_extends_grant_id_grants"),
        "access_requests",
        "grants",
        ["extends_grant_id"],
        ["id"],
    )
    op.create_index(
        "ix_access_requests_state_pending_until", "access_requests", ["state", "pending_until"]
    )
    op.add_column("grants", sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("grants", "reminded_at")
    op.drop_index("ix_access_requests_state_pending_until", table_name="access_requests")
    op.drop_constraint(
        op.f("fk_access_requests_extends_grant_id_grants"), "access_requests", type_="foreignkey"
    )
    op.drop_column("access_requests", "pending_until")
    op.drop_column("access_requests", "extends_grant_id")
    op.drop_column("access_requests", "kind")
