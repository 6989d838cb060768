"""Handing leases back at shutdown, so that unfinished work is taken over at once."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.core.models import Grant, OutboxMessage


def release_leases(sessions: sessionmaker[Session], owner: str) -> tuple[int, int]:
    """Release every lease `owner` holds on grants and undelivered messages; how many of each.
    Their due times are unchanged, so they are due again at once if they were due."""
    with sessions.begin() as session:
        grants = session.execute(
            update(Grant)
            .where(Grant.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        messages = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.lease_owner == owner, OutboxMessage.done_at.is_(None))
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    return int(grants or 0), int(messages or 0)
