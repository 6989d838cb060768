"""Remember which grant state the requester has been told of, so a crash cannot swallow a DM.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("notified_state", sa.String(length=20), nullable=True))
    op.execute("UPDATE grants SET notified_state = state")  # existing grants were announced


def downgrade() -> None:
    op.drop_column("grants", "notified_state")
