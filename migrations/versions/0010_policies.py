"""Policies of issue 11: a request may carry the latest moment its access may last, and the
duration first asked for when an approver approved less.

`access_requests.not_after`: set when the request was approved because the requester is on
call and the rule says `end_with_shift=True`; the grant expires at the earlier of its chosen
duration and this. `access_requests.asked_duration`: what the requester asked for, when an
approver approved a shorter `duration` (NULL: approved as asked). `ticket` and `ticket_url`:
the ticket reference given with the request (`Workflow(ticket=Ticket(...))`) and its link.
`escalated_at`: when a stale request was re-posted to its workflow's `escalate_to` (once), or
an unreviewed break-glass grant announced again. `reviewed_by`/`reviewed_at`: who marked a
break-glass grant Reviewed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "access_requests", sa.Column("not_after", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("access_requests", sa.Column("asked_duration", sa.Interval(), nullable=True))
    op.add_column("access_requests", sa.Column("ticket", sa.String(100), nullable=True))
    op.add_column("access_requests", sa.Column("ticket_url", sa.Text(), nullable=True))
    op.add_column(
        "access_requests", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("access_requests", sa.Column("reviewed_by", sa.String(64), nullable=True))
    op.add_column(
        "access_requests", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("access_requests", "reviewed_at")
    op.drop_column("access_requests", "reviewed_by")
    op.drop_column("access_requests", "escalated_at")
    op.drop_column("access_requests", "ticket_url")
    op.drop_column("access_requests", "ticket")
    op.drop_column("access_requests", "asked_duration")
    op.drop_column("access_requests", "not_after")
