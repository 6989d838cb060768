"""The durable outbox: messages written in the transaction of the change they report.

`Outbox.add` stores a message in the caller's session, so a change and its messages commit
together or not at all. A sender (the notifier's own, e.g. Slack's) drains the table through
`OutboxQueue`: it leases the oldest undelivered message of each conversation, delivers it with
no transaction open, and records the outcome while its lease holds. Delivery is in order per
conversation, survives restarts, and is shared safely by several processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.core.leases import next_free
from app.core.models import OutboxMessage
from app.core.text import clean
from app.db.rows import as_arrays, insert_from_arrays
from app.db.sets import one_of

log = logging.getLogger(__name__)

_ADDED = "outbox_added"


_COLUMNS = ("conversation", "kind", "request_id", "payload", "collapse_key")


def _insert() -> Any:
    # Core: no ORM bookkeeping for these rows; one statement for any number of them.
    statement = insert_from_arrays(OutboxMessage.__table__, _COLUMNS)
    # A waiting message with the same collapse key stands for the new one. Touching it (rather
    # than DO NOTHING) locks it until this transaction commits, so a sender cannot take it and
    # render the state from before this change. (One statement may touch a row only once:
    # `Outbox.add` keeps one message per collapse key in a transaction.)
    return statement.on_conflict_do_update(
        index_elements=["collapse_key"],
        index_where=text("done_at IS NULL AND lease_owner IS NULL"),
        set_={"collapse_key": statement.excluded.collapse_key},
    )


_INSERT = _insert()  # built once: building it (its `excluded` columns) cost more than a row
_WAITING = "outbox_waiting"


class Outbox:
    """The writing side. `on_commit` runs after a commit that added messages (wake the sender).

    Messages added in a transaction are written together just before it commits (one INSERT
    for all, in the order they were added), not one statement each: a batch of grants finished
    in one transaction costs one round trip for its messages."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.on_commit: Callable[[], None] = lambda: None
        event.listen(sessions, "before_commit", self._before_commit)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    def add(
        self,
        session: Session,
        *,
        conversation: str,
        kind: str,
        payload: dict[str, Any],
        request_id: Any = None,
        collapse_key: str | None = None,
    ) -> None:
        """Queue one message. With `collapse_key`, a message with the same key still waiting
        (not yet taken by a sender) stands for this one: it is rendered at delivery."""
        waiting: list[dict[str, Any]] = session.info.setdefault(_WAITING, [])
        if collapse_key is not None and any(m["collapse_key"] == collapse_key for m in waiting):
            return  # already queued in this transaction: it stands for this one
        waiting.append(
            {
                "conversation": conversation,
                "kind": kind,
                "payload": payload,
                "request_id": request_id,
                "collapse_key": collapse_key,
            }
        )

    def _before_commit(self, session: Session) -> None:
        waiting = session.info.pop(_WAITING, None)
        if not waiting:
            return
        # One statement, its rows in the order they were added within each conversation.
        # Conversations in one order: inserting takes a lock per conversation (migration
        # 0011), and two transactions must not take them crosswise.
        rows = sorted(waiting, key=lambda m: m["conversation"])
        session.connection().execute(_INSERT, as_arrays(rows, _COLUMNS))
        session.info[_ADDED] = True

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_ADDED, False):
            self.on_commit()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_WAITING, None)
        session.info.pop(_ADDED, None)


def _is_head() -> Any:
    """The outboxed message is the oldest undelivered one of its conversation. (A scalar
    subquery, so PostgreSQL runs it as one index probe per row it considers; written as NOT
    EXISTS it may hash-join each conversation with itself, which is quadratic.)"""
    older = aliased(OutboxMessage)
    oldest = (
        select(func.min(older.id))
        .where(older.conversation == OutboxMessage.conversation, older.done_at.is_(None))
        .scalar_subquery()
    )
    return OutboxMessage.id == oldest


@dataclass(frozen=True)
class Delivery:
    id: int
    conversation: str
    kind: str
    payload: dict[str, Any]
    request_id: Any
    attempts: int
    created_at: datetime
    collapse_key: str | None = None


class OutboxQueue:
    """The delivering side: lease, then record the outcome while the lease holds."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        owner: str,
        clock: Callable[[], datetime],
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.sessions = sessions
        self.owner = owner
        self.clock = clock
        self.lease = lease

    def claim(self, limit: int) -> list[Delivery]:
        """Lease up to `limit` messages, each the oldest undelivered of its conversation."""
        if limit <= 0:
            return []
        now = self.clock()
        # Undelivered messages that wait for no other, oldest first (`ix_outbox_ready`): a
        # claim reads about as many rows as it takes, however long a conversation's queue.
        # The database keeps `waiting` up to date; whether a message is its conversation's
        # first is still checked here, with one index probe.
        ready = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.done_at.is_(None),
                ~OutboxMessage.waiting,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
                _is_head(),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        with self.sessions.begin() as session:
            # The first few in id order are wanted: walk the index in order. (Estimating that
            # few rows qualify, the planner may otherwise read them all and sort them.) And
            # plan each statement for its values: planned for any ids, the second statement
            # below walked a partial index of the backlog (874 pages a claim) instead of
            # looking its few ids up by primary key.
            session.execute(
                select(
                    func.set_config("enable_bitmapscan", "off", True),
                    func.set_config("enable_seqscan", "off", True),
                    func.set_config("plan_cache_mode", "force_custom_plan", True),
                )
            )
            ids = list(session.scalars(ready))
            if not ids:
                return []
            # Rows another sender is claiming right now are skipped, not waited for. (Two
            # statements on primary keys: as one, with the locking select nested in the
            # update, PostgreSQL may plan it as a loop over the whole table.)
            free = session.scalars(
                select(OutboxMessage.id)
                .where(
                    one_of(OutboxMessage.id, ids),
                    OutboxMessage.done_at.is_(None),
                    or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
                )
                .with_for_update(skip_locked=True)
            ).all()
            if not free:
                return []
            rows = session.scalars(
                update(OutboxMessage)
                .where(one_of(OutboxMessage.id, free))
                .values(lease_owner=self.owner, lease_until=now + self.lease)
                .returning(OutboxMessage)
                .execution_options(synchronize_session=False)
            ).all()
            return [
                Delivery(
                    id=r.id,
                    conversation=r.conversation,
                    kind=r.kind,
                    payload=dict(r.payload),
                    request_id=r.request_id,
                    attempts=r.attempts,
                    created_at=r.created_at,
                    collapse_key=r.collapse_key,
                )
                for r in sorted(rows, key=lambda r: r.id)
            ]

    def next_due(self) -> datetime | None:
        """When a message that cannot be sent now (it waits for a retry, or another sender
        leases it) can next be sent. Only the first message of a conversation is ever leased or
        put off, so these are all first messages; a later one waits for the first of its
        conversation, whose delivery wakes the sender. Messages ready now are not counted: the
        claim just took them all, or another sender is taking them."""
        free_at, not_free_now = next_free(
            OutboxMessage.next_attempt_at, OutboxMessage.lease_until, self.clock()
        )
        with self.sessions.begin() as session:
            return session.scalar(
                select(func.min(free_at)).where(
                    OutboxMessage.done_at.is_(None), ~OutboxMessage.waiting, not_free_now
                )
            )

    def pending(self, request_id: Any = None) -> int:
        """Messages not delivered yet (about one request, when given)."""
        query = (
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.done_at.is_(None))
        )
        if request_id is not None:
            query = query.where(OutboxMessage.request_id == request_id)
        with self.sessions.begin() as session:
            return session.scalar(query) or 0

    def done(self, delivery: Delivery, outcome: str = "sent", error: str | None = None) -> None:
        """Delivered (or given up: `outcome="failed"` with why)."""
        self._finish(
            delivery,
            done_at=self.clock(),
            outcome=outcome,
            last_error=clean(error, 1000) if error else None,
        )

    def retry(
        self, delivery: Delivery, *, after: timedelta, error: str, count: bool = True
    ) -> None:
        """Not delivered this time; try again `after` from now. `count=False` for waits that
        are not failures (Slack said slow down)."""
        self._finish(
            delivery,
            next_attempt_at=self.clock() + after,
            attempts=delivery.attempts + (1 if count else 0),
            last_error=clean(error, 1000),
        )

    def _finish(self, delivery: Delivery, **values: Any) -> None:
        try:
            changed = self._update(delivery, **values)
        except IntegrityError:
            # A newer message with the same collapse key is waiting: it stands for this one.
            changed = self._update(delivery, done_at=self.clock(), outcome="collapsed")
        if not changed:
            log.warning(
                "outbox message %s: lease lost before its outcome was recorded", delivery.id
            )

    def _update(self, delivery: Delivery, **values: Any) -> int:
        with self.sessions.begin() as session:
            return session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == delivery.id, OutboxMessage.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None, **values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
