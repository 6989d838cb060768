"""Engine and session factory. Built by the caller from settings, never at import."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
    event.listen(engine, "connect", _no_jit)
    return engine


def _no_jit(connection: Any, _record: Any) -> None:
    """PostgreSQL compiles a query whose estimated cost is high (an aggregate over a backlog)
    with LLVM first, which costs more than the query itself: never worth it for short OLTP
    statements like ours."""
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    connection.commit()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def database_is_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any driver or network failure means "not reachable"
        return False
    return True
