"""The workers' timer with many active grants: when the next one falls due is read from two
indexes, not from every grant with work ahead (every active grant has: its expiry)."""

from __future__ import annotations

import copy
from datetime import timedelta

from sqlalchemy import create_engine, text, update
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from app.core.models import Grant
from app.core.ports import utcnow
from tests.support.bot import Bot
from tests.support.seeding import AHEAD, seed_orders_db

ACTIVE = 3000


def _next_due_and_rows_read(bot: Bot, database_url: str) -> tuple[object, int]:
    """`next_due()` run in a transaction of ours on a connection of its own, and the grant rows
    PostgreSQL read for it (pg_stat_xact_user_tables: this transaction alone)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("ANALYZE grants"))  # statistics, as autovacuum keeps them
            before = _grant_rows_read(connection)
            lifecycle = copy.copy(bot.runtime.lifecycle)
            lifecycle.sessions = sessionmaker(
                bind=connection, join_transaction_mode="create_savepoint"
            )
            due = lifecycle.next_due()
            return due, _grant_rows_read(connection) - before
    finally:
        engine.dispose()


def _grant_rows_read(connection: object) -> int:
    return int(
        connection.scalar(  # type: ignore[attr-defined]
            text(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                " FROM pg_stat_xact_user_tables WHERE relname = 'grants'"
            )
        )
        or 0
    )


def test_next_due_reads_a_few_rows_however_many_grants_are_active(
    bot: Bot, database_url: str
) -> None:
    seeded = seed_orders_db(database_url, ACTIVE, AHEAD)
    first = min(seeded, key=lambda g: g.expires_at)
    due, read = _next_due_and_rows_read(bot, database_url)
    assert due == first.expires_at
    assert read < 50, f"next_due read {read} grant rows with {ACTIVE} active"


def test_next_due_counts_a_lease_that_runs_out_first(bot: Bot, database_url: str) -> None:
    now = utcnow()
    seeded = seed_orders_db(database_url, 100, AHEAD)
    # Two grants are being worked on. One's lease runs out in 10 minutes, but its grant is not
    # due before its expiry; the other's grant was due an hour ago and its lease holds for
    # another 20 minutes: that one is due again first, before any unleased grant.
    soon, late = seeded[50], seeded[60]
    with bot.sessions.begin() as session:
        session.execute(
            update(Grant)
            .where(Grant.id == soon.grant_id)
            .values(lease_owner="elsewhere", lease_until=now + timedelta(minutes=10))
        )
        session.execute(
            update(Grant)
            .where(Grant.id == late.grant_id)
            .values(
                lease_owner="elsewhere",
                lease_until=now + timedelta(minutes=20),
                due_at=now - timedelta(hours=1),
            )
        )
    due, _ = _next_due_and_rows_read(bot, database_url)
    assert due == now + timedelta(minutes=20)


def test_the_bots_connections_never_compile_queries_with_jit(bot: Bot) -> None:
    """A query over a backlog looks expensive to the planner, which would compile it with LLVM
    first: that cost more than the query itself (measured: 352 ms against 85 ms)."""
    with bot.runtime.engine.connect() as connection:
        assert connection.scalar(text("SHOW jit")) == "off"
