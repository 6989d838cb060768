"""Durable after-ack jobs: work acknowledged to Slack and done later, by any process.

A Slack listener validates, writes a job (`JobQueue.add`: one statement, committed, with a
NOTIFY) and acks. A job loop (`app/core/work.py`, in whatever process runs one: the web process
itself, or a worker process of its own) claims jobs under a lease, runs each with no
transaction open, and deletes it when done. A process that dies after an ack loses nothing:
the job is in the table, and its lease, if it had one, runs out. A job that raises is tried
again after a pause, up to `max_attempts` times in all; then it is kept, marked failed, with
its last error, for an admin to see. Handlers must be safe to run twice (a lease can run out
while its holder is still at work): the core's operations are (submissions carry their Slack
id, decisions are final).

The core knows only kinds and JSON arguments; what a kind does is its handler's business.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.group_commit import GroupCommit
from app.core.leases import next_free
from app.core.models import AfterAckJob
from app.core.text import clean
from app.db.session import server_closed

log = logging.getLogger(__name__)

CHANNEL = "accessbot_jobs"  # NOTIFY on it wakes the job loops of every process
MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(seconds=2)  # after the first failure; doubled after each next one


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    args: list[Any]
    attempts: int
    created_at: datetime


# Insert jobs and NOTIFY, as one statement for any number of jobs (in the order given): one
# round trip, committed on its own, prepared once per connection.
_ADD_SQL = (
    f"WITH added AS (INSERT INTO {AfterAckJob.__tablename__} (kind, args) "
    "SELECT kind, CAST(args AS JSONB) "
    "FROM unnest(CAST(%(kinds)s AS TEXT[]), CAST(%(args)s AS TEXT[])) "
    "WITH ORDINALITY AS job(kind, args, n) ORDER BY n RETURNING 1) "
    f"SELECT pg_notify('{CHANNEL}', '') FROM (SELECT FROM added LIMIT 1) AS any_added"
)


class JobQueue:
    """Adding jobs (the listeners' side) and claiming them (the job loops' side)."""

    def __init__(
        self,
        *,
        engine: Engine,
        sessions: sessionmaker[Session],
        owner: str,
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(seconds=90),
        max_attempts: int = MAX_ATTEMPTS,
        retry_after: timedelta = RETRY_AFTER,
    ) -> None:
        # Adding commits on its own: no session, no ORM, one round trip on the ack path.
        self._engine = engine
        self._connection: Any = None  # the writer's own: only the group commit's leader writes
        self.sessions = sessions
        self.owner = owner
        self.clock = clock
        self.lease = lease
        self.max_attempts = max_attempts
        self.retry_after = retry_after  # after a first failure; doubled after each next one
        self.on_added: Callable[[], None] = lambda: None  # this process's loop, if it runs one
        self._writes: GroupCommit[tuple[str, str], None] = GroupCommit(
            run_batch=self._write, run_one=lambda job: self._write([job])[0]
        )

    def add(self, kind: str, args: list[Any]) -> None:
        """Store a job, committed when this returns (raises if the database refuses it).

        Jobs added at the same time by several threads (acks of a burst of requests) are
        written together, in one statement and one commit (`GroupCommit`): on the ack path,
        a commit apiece made every ack of a burst wait for the ones before it."""
        self._writes.submit((kind, json.dumps(args)))
        self.on_added()

    def _write(self, jobs: Sequence[tuple[str, str]]) -> Sequence[None]:
        connection = self._writer()
        try:
            connection.execute(
                _ADD_SQL,
                {"kinds": [kind for kind, _ in jobs], "args": [args for _, args in jobs]},
                prepare=True,
            )
        except Exception:
            self._connection = None
            with contextlib.suppress(Exception):
                connection.close()
            raise
        return [None] * len(jobs)

    def close(self) -> None:
        """Close the writer's connection (at shutdown, once listeners have stopped)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _writer(self) -> Any:
        """The connection jobs are written on: one of its own, kept open, with the statement
        prepared on it (no pool checkout, reset and return on the ack path). Replaced when the
        server has closed it (a restart), found by one local poll before each write."""
        connection = self._connection
        if connection is not None and server_closed(connection):
            connection = None
        if connection is None:
            pooled = self._engine.raw_connection()
            connection = pooled.driver_connection
            pooled.detach()
            connection.autocommit = True
            self._connection = connection
        return connection

    def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` jobs that are due, oldest first; jobs another process is
        claiming right now are skipped, not waited for."""
        if limit <= 0:
            return []
        now = self.clock()
        due = (
            select(AfterAckJob.id)
            .where(
                AfterAckJob.failed_at.is_(None),
                AfterAckJob.next_attempt_at <= now,
                or_(AfterAckJob.lease_until.is_(None), AfterAckJob.lease_until <= now),
            )
            .order_by(AfterAckJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.sessions.begin() as session:
            rows = session.execute(
                update(AfterAckJob)
                .where(AfterAckJob.id.in_(due))
                .values(lease_owner=self.owner, lease_until=now + self.lease)
                .returning(
                    AfterAckJob.id,
                    AfterAckJob.kind,
                    AfterAckJob.args,
                    AfterAckJob.attempts,
                    AfterAckJob.created_at,
                )
                .execution_options(synchronize_session=False)
            ).all()
        jobs = [Job(r.id, r.kind, list(r.args), r.attempts, r.created_at) for r in rows]
        return sorted(jobs, key=lambda job: job.id)

    def next_due(self) -> datetime | None:
        """When a job that cannot be run now (put off after a failure, or leased by another
        process) can next be. Jobs due now are not counted: the claim just took them all."""
        free_at, not_free_now = next_free(
            AfterAckJob.next_attempt_at, AfterAckJob.lease_until, self.clock()
        )
        with self.sessions.begin() as session:
            return session.scalar(
                select(func.min(free_at)).where(AfterAckJob.failed_at.is_(None), not_free_now)
            )

    def pending(self) -> int:
        """Jobs not done yet (failed for good ones aside)."""
        with self.sessions.begin() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(AfterAckJob)
                    .where(AfterAckJob.failed_at.is_(None))
                )
                or 0
            )

    def done(self, job: Job) -> None:
        with self.sessions.begin() as session:
            gone = session.execute(
                delete(AfterAckJob).where(
                    AfterAckJob.id == job.id, AfterAckJob.lease_owner == self.owner
                )
            ).rowcount  # type: ignore[attr-defined]
        if not gone:
            log.warning("after-ack job %s (%s): lease lost before it was done", job.id, job.kind)

    def failed(self, job: Job, error: str) -> bool:
        """The job raised `error`: try it again later, or, its attempts spent, keep it as
        failed. True when it will be tried again."""
        attempts = job.attempts + 1
        again = attempts < self.max_attempts
        values: dict[str, Any] = {"attempts": attempts, "last_error": clean(error, 1000)}
        if again:
            values["next_attempt_at"] = self.clock() + self.retry_after * 2 ** (attempts - 1)
        else:
            values["failed_at"] = self.clock()
        with self.sessions.begin() as session:
            session.execute(
                update(AfterAckJob)
                .where(AfterAckJob.id == job.id, AfterAckJob.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None, **values)
                .execution_options(synchronize_session=False)
            )
        return again


class JobHandlers:
    """What each kind of job does: `define(kind, fn)`, then `run(job)` calls `fn(*job.args)`."""

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[..., object]] = {}

    def define(self, kind: str, handler: Callable[..., object]) -> None:
        if kind in self._handlers:
            raise ValueError(f"after-ack job kind {kind!r} is defined twice")
        self._handlers[kind] = handler

    def known(self, kind: str) -> bool:
        return kind in self._handlers

    def run(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        if handler is None:
            # Written by a newer version of the bot, or a kind since removed.
            raise LookupError(f"no handler for after-ack job kind {job.kind!r}")
        handler(*job.args)


def run_job(queue: JobQueue, handlers: JobHandlers, job: Job) -> None:
    """Run one claimed job; delete it when done, or record its failure. A failure is logged
    with the job's kind and id, never its arguments (what people typed, Slack payloads)."""
    try:
        handlers.run(job)
    except Exception as exc:
        again = queue.failed(job, f"{exc.__class__.__name__}: {exc}")
        log.error(
            "after-ack job %s (%s) failed, attempt %d of %d%s",
            job.id,
            job.kind,
            job.attempts + 1,
            queue.max_attempts,
            "; trying again later" if again else "; giving up (kept in after_ack_jobs)",
            exc_info=True,
        )
        return
    queue.done(job)
