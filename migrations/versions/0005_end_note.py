"""Why a grant was ended early (shown to the person who loses the access).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("end_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("grants", "end_note")
