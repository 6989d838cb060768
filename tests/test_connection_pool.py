"""The bot's pooled database connections: a connection the server has closed is replaced
before it is used, and a healthy one is used as it is, without a round trip first (every
transaction waits for each round trip: a grant worker's claim, its outcome, the timers)."""

from __future__ import annotations

import os
import tempfile
import time

import psycopg
from sqlalchemy import Engine

from app.db.session import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)


def test_a_connection_the_server_closed_is_replaced_before_use(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)  # a restart, an idle timeout, an administrator

        second = _backend_pid(engine)  # no error: the pool gave a new connection

        assert second != first
    finally:
        engine.dispose()


def test_a_healthy_connection_is_used_without_a_round_trip_first(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        _backend_pid(engine)  # connected and back in the pool
        with engine.connect() as connection:
            pgconn = connection.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
        with tempfile.TemporaryFile() as trace:
            pgconn.trace(trace.fileno())  # libpq writes every protocol message it sends
            try:
                with engine.begin() as connection:
                    assert connection.exec_driver_sql("SELECT 'ours'").scalar_one() == "ours"
            finally:
                pgconn.untrace()
            trace.seek(0)
            lines = trace.read().decode(errors="replace").splitlines()
        sent = [line for line in lines if "\tF\t" in line]  # F: from the client
        queries = [line for line in sent if "\tQuery\t" in line or "\tParse\t" in line]
        assert len(queries) == 3, os.linesep.join(sent)  # BEGIN, ours, COMMIT: nothing else
        assert "ours" in queries[1]
    finally:
        engine.dispose()
