"""Grants written in one UPDATE (`app.core.grant_rows`): every change reaches the database,
each grant's own, including one made after the batch was written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core import grant_rows
from app.core.models import Grant, GrantState
from app.db.session import make_engine, make_session_factory
from tests.support.seeding import AHEAD, seed_orders_db


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url, pool_size=1)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _seed(database_url: str, count: int) -> list[str]:
    return [str(g.grant_id) for g in seed_orders_db(database_url, count, AHEAD)]


def _stored(sessions: sessionmaker[Session]) -> dict[str, Grant]:
    with sessions() as session:
        return {str(g.id): g for g in session.scalars(select(Grant))}


def test_every_change_is_stored_even_one_made_after_the_write(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    ids = _seed(database_url, 3)
    with sessions.begin() as session:
        grants = list(session.scalars(select(Grant).order_by(Grant.id).with_for_update()))
        grants[0].lease_owner = "worker-a"
        grants[1].state, grants[1].attempts = GrantState.REVOKING, 2
        grants[2].undo = {"member_id": "m-1", "note": 'a "quoted" word'}  # JSON in an array
        grants[2].last_error = "kept with it"
        grant_rows.write(session, grants)
        grants[0].last_error = "changed after the write"  # tracked, flushed at commit
    stored = _stored(sessions)
    first, second, third = (stored[str(g)] for g in sorted(ids))
    assert first.lease_owner == "worker-a"
    assert first.last_error == "changed after the write"
    assert second.state == GrantState.REVOKING and second.attempts == 2
    assert second.lease_owner is None and second.last_error is None  # not its changes
    assert third.undo == {"member_id": "m-1", "note": 'a "quoted" word'}
    assert third.last_error == "kept with it"


def test_unchanged_grants_are_not_written(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    _seed(database_url, 2)
    with sessions.begin() as session:
        grants = list(session.scalars(select(Grant)))
        connection = session.connection()
        before = connection.exec_driver_sql(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'grants'"
        ).scalar()
        grant_rows.write(session, grants)
        after = connection.exec_driver_sql(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'grants'"
        ).scalar()
    assert after == before
