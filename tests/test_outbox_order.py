"""Messages of one conversation are delivered oldest first, and none is left behind: the
database's `waiting` flag (migrations 0011, 0013) against ids drawn and committed out of order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.core.outbox import OutboxQueue
from app.core.ports import utcnow
from app.db.migrate import alembic_config, upgrade
from app.db.session import make_engine, make_session_factory

CONVERSATION = "CAPPROVALS"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def _insert(session: Session, message_id: int | None = None) -> int:
    columns, values = "conversation, kind, payload", ":conversation, 'post', '{}'"
    if message_id is not None:
        columns, values = "id, " + columns, ":id, " + values
    return int(
        session.execute(
            text(f"INSERT INTO outbox ({columns}) VALUES ({values}) RETURNING id"),
            {"id": message_id, "conversation": CONVERSATION},
        ).scalar_one()
    )


def _committed_out_of_order(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Message A draws its id; B draws a later one and commits; then A is written (as two
    transactions inserting at once may do). Returns (A's id, B's id)."""
    with sessions.begin() as session:
        drawn_first = int(
            session.execute(
                text("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))")
            ).scalar_one()
        )
    with sessions.begin() as session:
        drawn_later = _insert(session)
    with sessions.begin() as session:
        _insert(session, drawn_first)
    return drawn_first, drawn_later


def test_a_message_that_drew_its_id_first_but_committed_last_does_not_block_its_conversation(
    sessions: sessionmaker[Session],
) -> None:
    """A draws its id, B draws a later one and commits, then A's row is written: A must not
    wait behind B. It is the conversation's oldest, the only one a sender may take; waiting,
    no sender would, and the conversation would stop for good."""
    queue = OutboxQueue(sessions=sessions, owner="test", clock=utcnow)
    drawn_first, drawn_later = _committed_out_of_order(sessions)

    first = queue.claim(10)
    assert [d.id for d in first] == [drawn_first]
    assert queue.claim(10) == []  # the later one waits for it: order per conversation
    queue.done(first[0])
    assert [d.id for d in queue.claim(10)] == [drawn_later]


def test_a_message_behind_an_older_undelivered_one_waits_for_it(
    sessions: sessionmaker[Session],
) -> None:
    queue = OutboxQueue(sessions=sessions, owner="test", clock=utcnow)
    with sessions.begin() as session:
        older = _insert(session)
    with sessions.begin() as session:
        newer = _insert(session)
    with sessions.begin() as session:
        waiting = dict(session.execute(text("SELECT id, waiting FROM outbox")).all())
    assert waiting == {older: False, newer: True}
    first = queue.claim(10)
    assert [d.id for d in first] == [older]
    queue.done(first[0])
    assert [d.id for d in queue.claim(10)] == [newer]


def test_the_upgrade_releases_a_conversation_the_old_trigger_had_stopped(
    database_url: str,
) -> None:
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "0012")  # the trigger from before
    engine = make_engine(database_url, pool_size=2)
    sessions = make_session_factory(engine)
    queue = OutboxQueue(sessions=sessions, owner="test", clock=utcnow)
    try:
        drawn_first, _ = _committed_out_of_order(sessions)
        assert queue.claim(10) == []  # stopped: its oldest message waits behind a younger one

        upgrade(database_url)

        assert [d.id for d in queue.claim(10)] == [drawn_first]
    finally:
        engine.dispose()
