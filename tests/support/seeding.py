"""Grants of the test workflow's `orders-db`, written straight to the database (as the
benchmarks seed theirs), for tests that need many, or need them expired."""

from __future__ import annotations

from datetime import timedelta

from app.core.ports import utcnow
from benchmarks.seed import SeededGrant, seed_active_grants, spread

OVERDUE = (timedelta(minutes=-10), timedelta(seconds=-1))  # expired over the last ten minutes
AHEAD = (timedelta(hours=1), timedelta(hours=2))  # expiring in one to two hours


def seed_orders_db(
    database_url: str, count: int, between: tuple[timedelta, timedelta]
) -> list[SeededGrant]:
    """`count` active grants of orders-db, their expiries spread evenly `between` these
    offsets from now, one requester each."""
    now = utcnow()
    first, last = between
    return seed_active_grants(
        database_url,
        expiries=spread(count, now + first, now + last),
        workflow="production",
        resource="orders-db",
    )
