"""The workers' timer reads the next due time from two indexes instead of every grant.

`ix_grants_lease_until`: the grants leased right now (a few: those being worked on). With
`ix_grants_due_at`, `GrantLifecycle.next_due` reads the earliest unleased due grant and the
earliest lease to run out without reading every grant that has work ahead (every active grant
has: its expiry). Measured before: about 3,000 grant rows read per revoke with 1,000 active
grants.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_grants_lease_until",
        "grants",
        ["lease_until"],
        postgresql_where=sa.text("lease_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_grants_lease_until", table_name="grants")
