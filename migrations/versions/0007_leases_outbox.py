"""Leased grant work and a durable outbox for messages.

Grants gain `due_at` (when the grant next needs work: its expiry while active, its next attempt
while granting or revoking; NULL when done), a lease (`lease_owner`, `lease_until`) so a worker
can act on a grant with no transaction open, and `extension_request_id` (an approved extension
waiting to be carried out). Requests gain `routed_at`. `notified_state` goes: messages are now
written to the outbox in the transaction of the change they report, so none can be lost.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("grants", sa.Column("lease_owner", sa.String(length=100), nullable=True))
    op.add_column("grants", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("grants", sa.Column("extension_request_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE grants SET due_at = CASE state WHEN 'active' THEN expires_at "
        "WHEN 'granting' THEN coalesce(next_attempt_at, now()) "
        "WHEN 'revoking' THEN coalesce(next_attempt_at, now()) END"
    )
    op.create_index(
        "ix_grants_due_at", "grants", ["due_at"], postgresql_where=sa.text("due_at IS NOT NULL")
    )
    op.drop_index("ix_grants_state_next_attempt_at", table_name="grants")
    op.drop_column("grants", "notified_state")
    op.add_column(
        "access_requests", sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute("UPDATE access_requests SET routed_at = created_at")
    op.create_index(
        "ix_access_requests_unrouted",
        "access_requests",
        ["created_at"],
        postgresql_where=sa.text("routed_at IS NULL"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("conversation", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("collapse_key", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["conversation", "id"],
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_index(
        "ux_outbox_collapse",
        "outbox",
        ["collapse_key"],
        unique=True,
        postgresql_where=sa.text("done_at IS NULL AND lease_owner IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_outbox_collapse", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_access_requests_unrouted", table_name="access_requests")
    op.drop_column("access_requests", "routed_at")
    op.add_column("grants", sa.Column("notified_state", sa.String(length=20), nullable=True))
    op.execute("UPDATE grants SET notified_state = state")
    op.create_index("ix_grants_state_next_attempt_at", "grants", ["state", "next_attempt_at"])
    op.drop_index("ix_grants_due_at", table_name="grants")
    op.drop_column("grants", "extension_request_id")
    op.drop_column("grants", "lease_until")
    op.drop_column("grants", "lease_owner")
    op.drop_column("grants", "due_at")
