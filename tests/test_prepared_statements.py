"""Prepared statements stay prepared. psycopg forgets every statement it has prepared on a
connection whose transaction ends in ROLLBACK, so the bot's reads end theirs with a commit:
otherwise each timer's read, or the per-person cap's count on the ack path, would cost the
next statements on that connection their plans (in the revocation-lag benchmark, 24,000 of
54,000 statements planned anew)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, text

from tests.support.bot import REQUESTER, Bot


def test_reads_end_their_transactions_with_a_commit(bot: Bot) -> None:
    runtime = bot.runtime
    request, _ = bot.request_access()
    ended: list[str] = []

    def rolled_back(_conn: Any) -> None:
        ended.append("rollback")

    def committed(_conn: Any) -> None:
        ended.append("commit")

    reads = {
        "grant workers' timer": runtime.lifecycle.next_due,
        "reminders' timer": runtime.lifecycle.next_reminder,
        "overdue count": runtime.lifecycle.overdue,
        "outbox timer": runtime.outbox.next_due,
        "outbox backlog": runtime.outbox.pending,
        "escalations' timer": runtime.escalations.next_escalation,
        "break-glass timer": runtime.break_glass.next_reannouncement,
        "pending requests' timer": runtime.requests.next_pending_expiry,
        "per-person cap (ack path)": lambda: runtime.requests.limit_problem(REQUESTER),
        "a request's view": lambda: runtime.requests.find_view(request.id),
        "no such request": lambda: runtime.requests.find_view(uuid.uuid4()),
        "home tab": lambda: runtime.requests.overview(REQUESTER, decisions=False),
    }
    seen: dict[str, list[str]] = {}
    for what, read in reads.items():
        ended.clear()
        event.listen(runtime.engine, "rollback", rolled_back)
        event.listen(runtime.engine, "commit", committed)
        try:
            read()
        finally:
            event.remove(runtime.engine, "rollback", rolled_back)
            event.remove(runtime.engine, "commit", committed)
        seen[what] = list(ended)
    assert not [what for what, ends in seen.items() if "rollback" in ends], seen
    # (a read with nothing to read, such as escalations with none configured, ends none)
    assert sum("commit" in ends for ends in seen.values()) >= len(reads) - 2, seen


def test_a_read_keeps_the_connections_prepared_statements(bot: Bot) -> None:
    """The end to end check: a statement prepared on a connection is still there after a
    read on it."""
    runtime = bot.runtime
    # Nothing else of the bot may take a connection from here on (a loop's read would open a
    # second one, and the check below could be given that one).
    runtime.job_wakeups.stop(2)
    runtime.jobs.stop(5)
    runtime.grant_workers.stop(5)
    runtime.sender.stop(5)
    runtime.scheduler.shutdown()
    engine = runtime.engine
    engine.dispose()  # from here on one connection, ours
    for _ in range(6):  # psycopg prepares a statement on its fifth run on a connection
        runtime.lifecycle.overdue()

    def prepared() -> int:
        with engine.begin() as connection:  # committed: a rollback would forget them
            return connection.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()

    assert prepared() >= 1
    for _ in range(3):
        runtime.lifecycle.next_due()
    assert prepared() >= 1
