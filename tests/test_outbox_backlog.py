"""The outbox queue under a backlog: a conversation with many messages queued (the approvers'
channel after a mass revocation, paced to Slack's limits) must not cost every claim a read of
all of them, and a message queued while the one before it is being delivered is never lost.

These run the real queue (`Outbox`, `OutboxQueue`) on the real database: what they check is
what the sender would be handed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.core.models import OutboxMessage
from app.core.outbox import Outbox, OutboxQueue
from app.core.ports import utcnow
from app.db.session import make_engine, make_session_factory

CHANNEL = "CAPPROVERS"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    Outbox(factory)  # writes what `add` queued at commit, as the bot does
    return factory


def _queue(sessions: sessionmaker[Session], owner: str = "sender-1") -> OutboxQueue:
    return OutboxQueue(sessions=sessions, owner=owner, clock=utcnow)


def _add(sessions: sessionmaker[Session], conversation: str, n: int, outbox: Outbox) -> None:
    with sessions.begin() as session:
        for i in range(n):
            outbox.add(session, conversation=conversation, kind="post", payload={"n": i})


def test_a_claim_skips_a_long_queue_without_reading_it(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    outbox = Outbox(sessions)
    # 2,000 messages queued in one conversation whose first Slack has put off for an hour...
    _add(sessions, CHANNEL, 2000, outbox)
    queue = _queue(sessions)
    (first,) = queue.claim(1)
    assert first.conversation == CHANNEL and first.payload == {"n": 0}
    queue.retry(first, after=timedelta(hours=1), error="paced", count=False)
    # ...and then 10 direct messages, each to someone else.
    for n in range(10):
        _add(sessions, f"D{n}", 1, outbox)

    with engine.connect() as connection:  # statistics, as autovacuum keeps them
        connection.execute(text("ANALYZE outbox"))
        connection.commit()
    # The claim runs inside a transaction of ours on a connection of its own, so PostgreSQL's
    # counters of what it read (pg_stat_xact_user_tables) count the claim alone.
    fresh = create_engine(engine.url, poolclass=NullPool)
    with fresh.connect() as connection, connection.begin():
        inside = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        claimed = OutboxQueue(sessions=inside, owner="sender-1", clock=utcnow).claim(10)
        read = connection.scalar(
            text(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                " FROM pg_stat_xact_user_tables WHERE relname = 'outbox'"
            )
        )
    fresh.dispose()
    assert [d.conversation for d in claimed] == [f"D{n}" for n in range(10)]
    assert read is not None and read < 100, f"a claim of 10 read {read} outbox rows"


def test_messages_of_one_conversation_go_one_at_a_time_in_order(
    sessions: sessionmaker[Session],
) -> None:
    outbox = Outbox(sessions)
    _add(sessions, CHANNEL, 3, outbox)
    queue = _queue(sessions)
    seen = []
    for _ in range(3):
        claimed = queue.claim(10)
        assert len(claimed) == 1, "only the first undelivered message of a conversation"
        assert queue.claim(10) == [], "nothing else while it is being delivered"
        seen.append(claimed[0].payload["n"])
        queue.done(claimed[0])
    assert seen == [0, 1, 2]
    assert queue.claim(10) == []


def test_a_message_given_up_lets_the_next_one_go(sessions: sessionmaker[Session]) -> None:
    outbox = Outbox(sessions)
    _add(sessions, CHANNEL, 2, outbox)
    queue = _queue(sessions)
    (first,) = queue.claim(10)
    queue.done(first, "failed", "channel_not_found")
    (second,) = queue.claim(10)
    assert second.payload == {"n": 1}


def test_a_message_queued_while_the_one_before_it_is_finished_is_not_lost(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    """The sender records the first message delivered while, at the same moment, another
    transaction queues the next: whichever commits first, the new message must be sendable
    once the first is done (not left waiting behind a message that is gone)."""
    outbox = Outbox(sessions)
    _add(sessions, CHANNEL, 1, outbox)
    queue = _queue(sessions)
    (first,) = queue.claim(10)
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as delivering:
        # The delivery is recorded, not yet committed...
        delivering.execute(
            "UPDATE outbox SET done_at = now(), outcome = 'sent', lease_owner = NULL,"
            " lease_until = NULL WHERE id = %s",
            (first.id,),
        )
        # ...while another transaction queues the next message of the conversation.
        queued = threading.Event()

        def queue_next() -> None:
            _add(sessions, CHANNEL, 1, outbox)
            queued.set()

        writer = threading.Thread(target=queue_next)
        writer.start()
        queued.wait(0.5)  # it waits for the delivery's transaction (or, if broken, it does not)
        delivering.commit()
    writer.join(10)
    assert queued.is_set()
    claimed = queue.claim(10)
    assert [d.payload for d in claimed] == [{"n": 0}], "the new message is sendable"
    with sessions() as session:
        waiting = session.scalars(
            select(OutboxMessage.waiting).where(OutboxMessage.done_at.is_(None))
        ).all()
    assert waiting == [False]


def test_next_due_is_when_the_first_put_off_message_may_go(
    sessions: sessionmaker[Session],
) -> None:
    outbox = Outbox(sessions)
    _add(sessions, CHANNEL, 5, outbox)
    _add(sessions, "D1", 1, outbox)
    queue = _queue(sessions)
    claimed = {d.conversation: d for d in queue.claim(10)}
    assert set(claimed) == {CHANNEL, "D1"}
    queue.retry(claimed[CHANNEL], after=timedelta(minutes=5), error="paced", count=False)
    queue.retry(claimed["D1"], after=timedelta(minutes=2), error="ratelimited", count=False)
    due = queue.next_due()
    assert isinstance(due, datetime)
    in_two_minutes = utcnow() + timedelta(minutes=2)
    assert abs((due - in_two_minutes).total_seconds()) < 5
