"""Leases over queued rows (grants, outbox messages, after-ack jobs): when the next one is free,
and handing them back at shutdown so that unfinished work is taken over at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.models import AfterAckJob, Grant, OutboxMessage


def next_free(next_attempt_at: Any, lease_until: Any, now: Any) -> tuple[Any, Any]:
    """For a queue of leased rows: when the earliest row that cannot be taken now (put off
    until `next_attempt_at`, or leased until `lease_until`) can be, as `(expression, where)`:
    `select(func.min(expression)).where(where, ...)`."""
    return (
        func.greatest(next_attempt_at, func.coalesce(lease_until, next_attempt_at)),
        or_(next_attempt_at > now, lease_until > now),
    )


def release_leases(sessions: sessionmaker[Session], owner: str) -> tuple[int, int, int]:
    """Release every lease `owner` holds on grants, undelivered messages and after-ack jobs;
    how many of each.
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
        jobs = session.execute(
            update(AfterAckJob)
            .where(AfterAckJob.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    return int(grants or 0), int(messages or 0), int(jobs or 0)
