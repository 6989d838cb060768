"""What claiming a batch of due grants costs the database: a mass revocation runs this once per
batch, so every statement and every row write in it is paid thousands of times."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DataError

from app.core import audit
from app.core.audit import Event
from app.core.models import AuditEvent, GrantState, OutboxMessage
from app.core.outbox import Outbox
from app.core.ports import utcnow
from app.db.session import make_engine, make_session_factory
from tests.support.bot import Bot
from tests.support.seeding import OVERDUE, seed_orders_db
from tests.support.wait import wait_until

BATCH = 40


def _rows_in(params: Any, many: bool) -> int:
    """Rows an UPDATE writes: one per parameter set, or, for an UPDATE from arrays (one
    array per column), as many as its arrays hold."""
    if many:
        return len(params)
    arrays = [value for value in params.values() if isinstance(value, list)]
    if arrays:
        assert len({len(array) for array in arrays}) == 1, "arrays of unequal length"
        return len(arrays[0])
    return 1


def test_a_claim_writes_each_grant_once_in_a_few_statements(bot: Bot, database_url: str) -> None:
    runtime = bot.runtime
    runtime.grant_workers.stop(5)  # this test claims by hand
    seeded = seed_orders_db(database_url, BATCH, OVERDUE)
    statements: list[str] = []
    rows_written: Counter[str] = Counter()
    updates: Counter[str] = Counter()
    ours = threading.current_thread()  # not the bot's own loops (after-ack jobs, the sender)

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if threading.current_thread() is not ours:
            return
        statements.append(sql)
        written = re.match(r"\s*UPDATE (\w+)", sql)
        if written:
            # executemany: one call, but one statement per row for PostgreSQL to run
            updates[written.group(1)] += len(params) if many else 1
            rows_written[written.group(1)] += _rows_in(params, many)

    engine = runtime.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        claims = runtime.lifecycle.claim_due(BATCH)
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert {c.grant_id for c in claims} == {g.grant_id for g in seeded}
    assert all(c.plan is not None and c.plan.operation == "revoke" for c in claims)
    # Each grant leased and moved to revoking by one row write, all in one statement.
    assert rows_written == {"grants": BATCH}, rows_written
    assert updates == {"grants": 1}, updates
    # Take and load the grants with their requests' approvals, lock their people, look for
    # their other grants, write the grants, write the audit: a fixed number however many are
    # claimed (each a round trip the claim waits for).
    assert len(statements) <= 5, "\n".join(s[:80] for s in statements)
    states = {g.id: g.state for g in bot.grants()}
    assert {states[g.grant_id] for g in seeded} == {GrantState.REVOKING}


def test_claims_and_outcomes_of_any_batch_size_send_the_same_statements(
    bot: Bot, database_url: str
) -> None:
    """PostgreSQL plans a statement once per connection only if its text stays the same: a
    list rendered as `IN ($1, $2, ...)` would make a new statement of every batch size, each
    parsed and planned again (more than its run costs). The claim's LIMIT alone is written in
    (a batch size is one of a few dozen, each planned once for what it is)."""
    runtime = bot.runtime
    runtime.grant_workers.stop(5)  # this test claims and records by hand
    seed_orders_db(database_url, 3 + 5, OVERDUE)
    engine = runtime.engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"

    def statements_of(batch: int) -> list[str]:
        sent: list[str] = []
        ours = {threading.current_thread()}  # not the bot's own threads (its Slack sender)

        def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
            # What is planned for a batch (the UPDATEs' text depends only on which columns
            # changed), by this test's threads.
            if threading.current_thread() in ours and sql.lstrip().startswith("SELECT"):
                sent.append(sql)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            claims = runtime.lifecycle.claim_due(batch)
            assert len(claims) == batch
            attempts = [  # at once: their outcomes are recorded in batches
                threading.Thread(target=runtime.lifecycle.attempt, args=(claim,))
                for claim in claims
            ]
            ours.update(attempts)
            for attempt in attempts:
                attempt.start()
            for attempt in attempts:
                attempt.join(10)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return sent

    three, five = statements_of(3), statements_of(5)
    assert any(re.search(r"\bLIMIT 3\b", sql) for sql in three)  # the claim's, written in
    three, five = ([re.sub(r"\bLIMIT \d+", "LIMIT n", sql) for sql in s] for s in (three, five))
    assert set(three) == set(five), "\n\n".join(sorted(set(three) ^ set(five)))
    wait_until(
        lambda: sum(g.state == GrantState.REVOKED for g in bot.grants()) == 8, what="revoked"
    )


def test_a_batch_of_outcomes_writes_its_grants_in_one_update(bot: Bot, database_url: str) -> None:
    """Outcomes recorded together (revoked, failed and to be retried) write every grant of the
    batch in one statement, each with its own values."""
    runtime = bot.runtime
    runtime.grant_workers.stop(5)  # this test claims and records by hand
    now = utcnow()
    seed_orders_db(database_url, 6, OVERDUE)
    claims = runtime.lifecycle.claim_due(6)
    assert len(claims) == 6 and all(c.plan is not None for c in claims)
    failing = {claims[0].grant_id, claims[3].grant_id}
    outcomes = [
        (c.plan, "the target said no" if c.grant_id in failing else None, None) for c in claims
    ]
    updates: list[int] = []
    ours = threading.current_thread()

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if threading.current_thread() is ours and re.match(r"\s*UPDATE grants\b", sql):
            updates.extend([1] * len(params) if many else [_rows_in(params, many)])

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        runtime.lifecycle._finish_many(outcomes)  # type: ignore[arg-type]
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)

    assert updates == [6], updates
    grants = {g.id: g for g in bot.grants()}
    for claim in claims:
        grant = grants[claim.grant_id]
        assert grant.lease_owner is None and grant.lease_until is None
        if claim.grant_id in failing:
            assert grant.state == GrantState.REVOKING
            assert grant.attempts == 1 and grant.last_error == "the target said no"
            assert grant.due_at is not None and grant.due_at > now
            assert grant.ended_at is None and grant.end_reason == "expired"  # not the revoked ones'
        else:
            assert grant.state == GrantState.REVOKED
            assert grant.attempts == 0 and grant.last_error is None and grant.due_at is None
            assert grant.ended_at is not None


def test_a_transactions_messages_and_audit_events_go_in_one_insert_each_in_order(
    bot: Bot, database_url: str
) -> None:
    """A batch of outcomes writes two messages and two audit events per grant: one statement
    each for the whole batch (not one per row), the same statement whatever the batch's size
    (planned once), and the rows stored in the order they were added."""
    bot.runtime.sender.stop(5)  # these messages are for this test to read, not to deliver
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    outbox = Outbox(sessions)
    label = uuid.uuid4().hex[:8]

    def write(rows: int) -> list[str]:
        inserts: list[str] = []

        def seen(_conn: Any, _cursor: Any, sql: str, _params: Any, _ctx: Any, many: bool) -> None:
            if sql.lstrip().startswith("INSERT"):
                inserts.append(("many " if many else "") + sql)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            with sessions.begin() as session:
                for n in range(rows):  # two conversations, interleaved
                    outbox.add(
                        session,
                        conversation=f"{label}-{rows}-{n % 2}",
                        kind="post",
                        payload={"n": n, "text": f"message {n}"},
                    )
                    audit.record(
                        session, Event.EXPIRED, actor=f"{label}-{rows}", request_id=None, n=n
                    )
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return inserts

    try:
        three, five = write(3), write(5)
        # One for the outbox, one for the audit log; neither sent once per row (`executemany`:
        # psycopg pipelines the rows, but PostgreSQL parses and runs a statement for each).
        assert len(five) == 2 and not [sql for sql in five if sql.startswith("many ")], five
        assert sorted(three) == sorted(five)
        with sessions.begin() as session:
            for rows in (3, 5):
                for parity in (0, 1):
                    stored = session.scalars(
                        select(OutboxMessage.payload)
                        .where(OutboxMessage.conversation == f"{label}-{rows}-{parity}")
                        .order_by(OutboxMessage.id)
                    ).all()
                    assert [p["n"] for p in stored] == list(range(parity, rows, 2))
                recorded = session.scalars(
                    select(AuditEvent.detail)
                    .where(AuditEvent.actor == f"{label}-{rows}")
                    .order_by(AuditEvent.id)
                ).all()
                assert [d["n"] for d in recorded] == list(range(rows))
    finally:
        engine.dispose()


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(
    bot: Bot, database_url: str
) -> None:
    """The rows' arrays are cast to `VARCHAR[]`, not `VARCHAR(64)[]`: a cast to `varchar(n)`
    would cut an overlong value short without a word, where the column refuses it."""
    engine = make_engine(database_url, pool_size=1)
    sessions = make_session_factory(engine)
    actor = "a" * 65  # audit_events.actor is VARCHAR(64)
    try:
        with pytest.raises(DataError, match="too long"), sessions.begin() as session:
            audit.record(session, Event.EXPIRED, actor=actor, request_id=None)
        with sessions.begin() as session:
            stored = session.scalars(
                select(AuditEvent.id).where(AuditEvent.actor.startswith("a" * 64))
            ).all()
        assert stored == []
    finally:
        engine.dispose()


def test_an_outcome_waits_to_share_its_transaction_while_other_calls_are_in_progress(
    bot: Bot, database_url: str
) -> None:
    """In a backlog, calls end a few milliseconds apart, and a transaction per outcome costs
    each its round trips and commit. An outcome that would be recorded alone waits briefly
    while other calls are still in progress (here, as long as the test needs), and shares
    their transaction; with none in progress it is recorded at once (test_group_commit)."""
    runtime = bot.runtime
    runtime.grant_workers.stop(5)  # this test claims and records by hand
    finishing = runtime.lifecycle._finishing
    finishing.gather, finishing.min_batch = 5.0, 2  # wait for the other, however long
    seed_orders_db(database_url, 2, OVERDUE)
    claims = runtime.lifecycle.claim_due(2)
    assert len(claims) == 2
    bot.webhook.hang_next(1, 0.3)  # one call takes 0.3 s (within its 1 s timeout), one none
    attempts = [
        threading.Thread(target=runtime.lifecycle.attempt, args=(claim,)) for claim in claims
    ]
    ours = set(attempts)
    commits: list[float] = []

    def committed(_conn: Any) -> None:
        if threading.current_thread() in ours:
            commits.append(time.monotonic())

    event.listen(runtime.engine, "commit", committed)
    try:
        started = time.monotonic()
        for attempt in attempts:
            attempt.start()
        for attempt in attempts:
            attempt.join(10)
    finally:
        event.remove(runtime.engine, "commit", committed)
    assert sum(g.state == GrantState.REVOKED for g in bot.grants()) == 2
    assert len(commits) == 1, "the quick call's outcome was recorded alone"
    assert 0.3 <= commits[0] - started < 4.0  # after the slow call, long before the 5 s gather

    # With no other call in progress, an outcome is recorded at once.
    seed_orders_db(database_url, 1, OVERDUE)
    (claim,) = runtime.lifecycle.claim_due(1)
    started = time.monotonic()
    runtime.lifecycle.attempt(claim)
    assert time.monotonic() - started < 2.0
    assert sum(g.state == GrantState.REVOKED for g in bot.grants()) == 3
