"""Bulk seeding of grants, as an earlier accessbot process would have left them, with COPY.

Each seeded grant is an approved request plus an active grant whose `expires_at` is given; the
request already reached the approvers (it has a message `ts`, unique per request, so updates to
it can be told apart) and the requester was told it was granted. Columns are written only if
the schema has them, so seeding works before and after migration 0007 (`due_at` = `expires_at`
for an active grant, no lease).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

APPROVER = "UAPPROVER1"
APPROVERS_CHANNEL = "CBENCHAPPROVALS"
GRANT_DURATION = timedelta(minutes=15)


def conninfo(database_url: str) -> str:
    """psycopg's form of a SQLAlchemy URL."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


@dataclass(frozen=True)
class SeededGrant:
    grant_id: uuid.UUID
    request_id: uuid.UUID
    requester: str
    resource: str
    expires_at: datetime
    approvers_channel: str
    message_ts: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def columns(connection: psycopg.Connection[Any], table: str) -> set[str]:
    rows = connection.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _copy(connection: psycopg.Connection[Any], table: str, rows: Sequence[dict[str, Any]]) -> None:
    """COPY the rows' values for the columns the table has (the first row's keys decide)."""
    if not rows:
        return
    present = columns(connection, table)
    names = [name for name in rows[0] if name in present]
    with connection.cursor() as cursor:
        statement = f"COPY {table} ({', '.join(names)}) FROM STDIN"
        with cursor.copy(statement) as copy:  # type: ignore[arg-type]
            for row in rows:
                copy.write_row([row[name] for name in names])


def seed_active_grants(
    database_url: str,
    *,
    expiries: Iterable[datetime],
    workflow: str,
    resource: str,
    requester_prefix: str = "UBENCH",
    start: int = 0,
    approvers_channel: str = APPROVERS_CHANNEL,
) -> list[SeededGrant]:
    """One approved request and active grant per expiry; requester ids are unique per grant."""
    now = utcnow()
    decided = now - timedelta(minutes=1)
    requests: list[dict[str, Any]] = []
    approvals: list[dict[str, Any]] = []
    grants: list[dict[str, Any]] = []
    seeded: list[SeededGrant] = []
    for n, expires_at in enumerate(expiries, start=start):
        request_id, grant_id = uuid.uuid4(), uuid.uuid4()
        requester = f"{requester_prefix}{n:06d}"
        ts = f"{1600000000 + n}.{uuid.uuid4().int % 1000000:06d}"
        granted_at = expires_at - GRANT_DURATION
        requests.append(
            {
                "id": request_id,
                "workflow": workflow,
                "resource_id": resource,
                "requester_slack_id": requester,
                "requester_email": f"{requester.lower()}@example.com",
                "requester_name": f"User {requester}",
                "justification": "benchmark: seeded grant",
                "duration": GRANT_DURATION,
                "state": "approved",
                "created_at": decided - timedelta(seconds=5),
                "decided_at": decided,
                "decided_by": APPROVER,
                "auto_approved": False,
                "required_approvals": 1,
                "kind": "access",
                "approvers_channel": approvers_channel,
                "approvers_message_ts": ts,
                "routed_at": decided,  # 0007: routing recorded its outcome
            }
        )
        approvals.append(
            {"request_id": request_id, "approver_slack_id": APPROVER, "approved_at": decided}
        )
        grants.append(
            {
                "id": grant_id,
                "request_id": request_id,
                "state": "active",
                "created_at": decided,
                "granted_at": granted_at,
                "expires_at": expires_at,
                "attempts": 0,
                "notified_state": "active",  # before 0007: the requester was told
                "due_at": expires_at,  # 0007: an active grant is due at its expiry
                "lease_owner": None,
                "lease_until": None,
            }
        )
        seeded.append(
            SeededGrant(
                grant_id=grant_id,
                request_id=request_id,
                requester=requester,
                resource=resource,
                expires_at=expires_at,
                approvers_channel=approvers_channel,
                message_ts=ts,
            )
        )
    with psycopg.connect(conninfo(database_url)) as connection:
        _copy(connection, "access_requests", requests)
        _copy(connection, "approvals", approvals)
        _copy(connection, "grants", grants)
    with psycopg.connect(conninfo(database_url), autocommit=True) as connection:
        # A database that has held this many grants has statistics (autovacuum keeps them);
        # a freshly bulk-loaded one has none until autovacuum gets to it, and plans blind.
        connection.execute("ANALYZE access_requests, approvals, grants")
    return seeded


def spread(count: int, first: datetime, last: datetime) -> list[datetime]:
    """`count` moments evenly from `first` to `last`."""
    if count == 1:
        return [first]
    step = (last - first) / (count - 1)
    return [first + step * i for i in range(count)]


# -- reading the outcome ---------------------------------------------------------------------


def grant_states(database_url: str) -> dict[str, int]:
    with psycopg.connect(conninfo(database_url)) as connection:
        rows = connection.execute("SELECT state, count(*) FROM grants GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def audit_trails(database_url: str, request_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each request's audit events, oldest first, one line each (to tell why it went wrong)."""
    trails: dict[str, list[str]] = {}
    with psycopg.connect(conninfo(database_url)) as connection:
        rows = connection.execute(
            "SELECT request_id::text, at, event, actor, grant_id, detail FROM audit_events"
            " WHERE request_id::text = ANY(%s) ORDER BY id",
            (list(request_ids),),
        ).fetchall()
    for request_id, at, event, actor, grant_id, detail in rows:
        trails.setdefault(request_id, []).append(
            f"{at.isoformat()} {event} by {actor} grant={grant_id} {detail}"
        )
    return trails


def outbox_pending(database_url: str) -> int | None:
    """Messages not yet delivered (None before the outbox exists)."""
    with psycopg.connect(conninfo(database_url)) as connection:
        if not columns(connection, "outbox"):
            return None
        row = connection.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def outbox_outcomes(database_url: str) -> dict[str, int]:
    with psycopg.connect(conninfo(database_url)) as connection:
        if not columns(connection, "outbox"):
            return {}
        rows = connection.execute(
            "SELECT coalesce(outcome, 'pending'), count(*) FROM outbox GROUP BY 1"
        ).fetchall()
    return {str(outcome): int(count) for outcome, count in rows}


def has_column(database_url: str, table: str, column: str) -> bool:
    with psycopg.connect(conninfo(database_url)) as connection:
        return column in columns(connection, table)


@dataclass(frozen=True)
class StoredRequest:
    id: uuid.UUID
    requester: str
    state: str
    approvers_channel: str
    message_ts: str | None
    grant_state: str | None


def requests_of(database_url: str, requester_prefix: str) -> list[StoredRequest]:
    """The requests whose requester id starts with the prefix, oldest first."""
    with psycopg.connect(conninfo(database_url)) as connection:
        rows = connection.execute(
            "SELECT r.id, r.requester_slack_id, r.state, r.approvers_channel, "
            "r.approvers_message_ts, g.state FROM access_requests r "
            "LEFT JOIN grants g ON g.request_id = r.id "
            "WHERE r.requester_slack_id LIKE %s ORDER BY r.created_at",
            (requester_prefix + "%",),
        ).fetchall()
    return [StoredRequest(*row) for row in rows]


def database_activity(database_url: str) -> dict[str, int]:
    """Cumulative counters of this database: transactions, and rows written per table.

    PostgreSQL publishes them about once a second; read them after a pause to see them all."""
    with psycopg.connect(conninfo(database_url)) as connection:
        row = connection.execute(
            "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        tables = connection.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del,"
            " coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
        ).fetchall()
    found = {"transactions": int(row[0]), "rows read": int(row[1])} if row else {}
    found.update({f"{name} rows written": int(count) for name, count, _ in tables})
    found.update({f"{name} rows read": int(read) for name, _, read in tables})
    return found
