"""What claiming a batch of due grants costs the database: a mass revocation runs this once per
batch, so every statement and every row write in it is paid thousands of times."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from app.core.models import GrantState
from app.core.ports import utcnow
from benchmarks.seed import seed_active_grants, spread
from tests.support.bot import Bot
from tests.support.wait import wait_until

BATCH = 40


def test_a_claim_writes_each_grant_once_in_a_few_statements(bot: Bot, database_url: str) -> None:
    runtime = bot.runtime
    runtime.grant_workers.stop(5)  # this test claims by hand
    now = utcnow()
    seeded = seed_active_grants(
        database_url,
        expiries=spread(BATCH, now - timedelta(minutes=10), now - timedelta(seconds=1)),
        workflow="production",
        resource="orders-db",
    )
    statements: list[str] = []
    rows_written: Counter[str] = Counter()

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        statements.append(sql)
        written = re.match(r"\s*UPDATE (\w+)", sql)
        if written:
            rows_written[written.group(1)] += len(params) if many else 1

    engine = runtime.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        claims = runtime.lifecycle.claim_due(BATCH)
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert {c.grant_id for c in claims} == {g.grant_id for g in seeded}
    assert all(c.plan is not None and c.plan.operation == "revoke" for c in claims)
    # Each grant leased and moved to revoking by one row write, at commit.
    assert rows_written == {"grants": BATCH}, rows_written
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
    now = utcnow()
    seed_active_grants(
        database_url,
        expiries=spread(3 + 5, now - timedelta(minutes=10), now - timedelta(seconds=1)),
        workflow="production",
        resource="orders-db",
    )
    engine = runtime.engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"

    def statements_of(batch: int) -> list[str]:
        sent: list[str] = []
        ours = {threading.current_thread()}  # not the bot's own threads (its Slack sender)

        def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
            # What is planned (writes are by key), by this test's threads.
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
