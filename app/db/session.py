"""Engine and session factory. Built by the caller from settings, never at import."""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=10)
    event.listen(engine, "connect", _session_settings)
    event.listen(engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Before a pooled connection is used: if the server has closed it (a restart, a
    terminated backend, an idle timeout), it says so on the socket (an error, then end of
    file), and the pool replaces the connection with a new one (DisconnectionError).

    A local check (one poll() of the socket), not a round trip: SQLAlchemy's `pool_pre_ping`
    sent `SELECT 1` before every transaction, and every transaction waits for each round trip
    (on a busy machine 2-3 ms: a grant worker's claim, its outcome, every timer's read). An
    idle connection has nothing to read; a healthy one never sends unasked (the bot does not
    LISTEN). A server that vanished without closing its side (a host powered off) is found by
    the statement, as a ping would have been; SQLAlchemy then renews the whole pool."""
    try:
        closed = dbapi_connection.closed or _readable(dbapi_connection.fileno())
    except Exception as exc:  # no socket any more
        raise DisconnectionError(str(exc)) from exc
    if closed:
        raise DisconnectionError("the server closed the connection")


def server_closed(dbapi_connection: Any) -> bool:
    """Whether the server has closed this connection (or it has no socket): one local poll."""
    try:
        return bool(dbapi_connection.closed or _readable(dbapi_connection.fileno()))
    except Exception:
        return True


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _session_settings(connection: Any, _record: Any) -> None:
    """Settings for each of our connections.

    `jit = off`: PostgreSQL compiles a query whose estimated cost is high (an aggregate over a
    backlog) with LLVM first, which costs more than the query itself: never worth it for
    short OLTP statements like ours.

    `plan_cache_mode = force_generic_plan`: psycopg prepares a statement once a connection has
    run it five times; PostgreSQL would still plan it again for each run's values (a "custom"
    plan) whenever that plan looks cheaper than one for any values, and for ours it always
    does: a grant worker's claim, its outcome's read and the overlap check each cost 0.2-0.4 ms
    of planning against under 0.1 ms of running. Our statements find rows through primary keys
    and the indexes made for them, the same plan whatever the values (checked with EXPLAIN for
    those three), so each prepared statement is planned once per connection. (The outbox's
    claim, which walks a partial index, asks for plans of its own values again.)

    `random_page_cost = 1.1` (the usual value for SSDs and cloud disks; PostgreSQL's 4 is for
    spinning disks): planned for any values, a lookup of a few keys in a table of a few
    thousand rows looked dearer through its index than reading the whole table, and the
    revocation-lag benchmark read 3,780 rows per revoke instead of 500; with this, 616, and
    less of PostgreSQL's CPU than before either change."""
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute("SET random_page_cost = 1.1")
    connection.commit()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for the bot. Open them with `sessions.begin()`, reads too: a transaction that
    ends in ROLLBACK makes psycopg forget every statement it has prepared on that connection
    (it cannot tell a rollback that undid DDL from one that did not), so a read-only session
    closed without a commit (a timer's `next_due`, the per-person cap's count on the ack path)
    cost the next statements on that connection their prepared plans: in the revocation-lag
    benchmark 24,000 of 54,000 statements were planned anew. A commit of a transaction that
    wrote nothing costs nothing."""
    return sessionmaker(engine, expire_on_commit=False)


def database_is_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any driver or network failure means "not reachable"
        return False
    return True
