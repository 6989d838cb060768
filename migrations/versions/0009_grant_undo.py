"""What undoes a grant, and access that outlives it.

`grants.undo`: what the strategy's grant call returned to undo exactly that grant (a login, a
principal and permission set, a group id), handed back at revoke. `grants.held_before`: the
person had the access before this grant, so revoking it must leave the access in place.
`grants.kept`: why a revoke sent nothing to the target ('held_before', or 'another_grant' when
another active grant of the same person covers the same target).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("undo", postgresql.JSONB(), nullable=True))
    op.add_column(
        "grants",
        sa.Column("held_before", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("grants", sa.Column("kept", sa.String(length=20), nullable=True))


def downgrade() -> None:
    op.drop_column("grants", "kept")
    op.drop_column("grants", "held_before")
    op.drop_column("grants", "undo")
