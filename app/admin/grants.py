"""`accessbot grants list`: who holds (or held) which access, newest first."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, String, func, or_, select
from sqlalchemy.orm import Session

from app.admin import iso_z
from app.core.models import AccessRequest, Grant, GrantState

# Access may still be live in these states: REVOKING means the revoke call has not succeeded yet.
LIVE_STATES = (GrantState.ACTIVE, GrantState.REVOKING)

HEADERS = ("REQUEST", "RESOURCE", "USER", "STATE", "GRANTED", "EXPIRES", "LEFT", "APPROVED BY")


@dataclass(frozen=True)
class GrantRow:
    request_id: str
    grant_id: str
    resource: str
    workflow: str
    user_email: str | None
    user_slack_id: str
    state: GrantState
    granted_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    approved_by: str | None  # the request's decided_by


def list_grants(
    session: Session,
    *,
    active_only: bool = False,
    overdue_at: datetime | None = None,
    user_email: str | None = None,
    limit: int | None = None,
) -> list[GrantRow]:
    """Grants with their requests, newest first. `active_only` keeps ACTIVE and REVOKING;
    `overdue_at` keeps those of them whose expiry is before that moment (access that has
    outlived its expiry: the revoke has not succeeded yet)."""
    query = _grants_query()
    if active_only or overdue_at is not None:
        query = query.where(Grant.state.in_([state.value for state in LIVE_STATES]))
    if overdue_at is not None:
        query = query.where(Grant.expires_at < overdue_at)
    if user_email is not None:
        query = query.where(func.lower(AccessRequest.requester_email) == user_email.lower())
    if limit is not None:
        query = query.limit(limit)
    return [_to_row(row) for row in session.execute(query)]


def _grants_query() -> Select[Any]:
    return (
        select(
            AccessRequest.id.label("request_id"),
            Grant.id.label("grant_id"),
            AccessRequest.resource_id,
            AccessRequest.workflow,
            AccessRequest.requester_email,
            AccessRequest.requester_slack_id,
            Grant.state,
            Grant.granted_at,
            Grant.expires_at,
            Grant.ended_at,
            AccessRequest.decided_by,
        )
        .join(AccessRequest, Grant.request_id == AccessRequest.id)
        .order_by(Grant.created_at.desc(), Grant.id.desc())
    )


def _to_row(row: Row[Any]) -> GrantRow:
    return GrantRow(
        request_id=str(row.request_id),
        grant_id=str(row.grant_id),
        resource=row.resource_id,
        workflow=row.workflow,
        user_email=row.requester_email,
        user_slack_id=row.requester_slack_id,
        state=GrantState(row.state),
        granted_at=_utc(row.granted_at),
        expires_at=_utc(row.expires_at),
        ended_at=_utc(row.ended_at),
        approved_by=row.decided_by,
    )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


# -- table ---------------------------------------------------------------------------------


def format_table(rows: Sequence[GrantRow], *, now: datetime) -> str:
    """A fixed-width table, one grant a line, then "N grant(s)"; "no grants" when empty."""
    if not rows:
        return "no grants"
    cells = [HEADERS, *(_cells(row, now) for row in rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    lines.append(f"{len(rows)} grant{'' if len(rows) == 1 else 's'}")
    return "\n".join(lines)


def _cells(row: GrantRow, now: datetime) -> tuple[str, ...]:
    return (
        row.request_id[:8],
        row.resource,
        row.user_email or row.user_slack_id,
        row.state.value,
        _minute(row.granted_at),
        _minute(row.expires_at),
        time_left(row, now=now),
        row.approved_by or "-",
    )


def _minute(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def time_left(row: GrantRow, *, now: datetime) -> str:
    """`14m`, `2h05m`, `1d03h` for an ACTIVE grant; `<1m`; once past expires_at while the
    access may still be live (ACTIVE or REVOKING), `overdue` and by how long (`overdue 12m`);
    `-` for every other state."""
    if row.state not in LIVE_STATES or row.expires_at is None:
        return "-"
    seconds = int((row.expires_at - now).total_seconds())
    if seconds <= 0:
        late = -seconds
        return "overdue" if late < 60 else f"overdue {_span(late)}"
    if row.state is not GrantState.ACTIVE:
        return "-"
    return "<1m" if seconds < 60 else _span(seconds)


def _span(seconds: int) -> str:
    hours, minutes = divmod(seconds // 60, 60)
    if hours == 0:
        return f"{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{hours}h{minutes:02d}m" if days == 0 else f"{days}d{hours:02d}h"


# -- JSON ----------------------------------------------------------------------------------


def rows_to_json(rows: Sequence[GrantRow]) -> str:
    """A JSON array; timestamps are ISO 8601 UTC ending with "Z", or null."""
    return json.dumps([_to_json(row) for row in rows], indent=2)


def _to_json(row: GrantRow) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "grant_id": row.grant_id,
        "resource": row.resource,
        "workflow": row.workflow,
        "user": {"email": row.user_email, "slack_id": row.user_slack_id},
        "state": row.state.value,
        "granted_at": iso_z(row.granted_at),
        "expires_at": iso_z(row.expires_at),
        "ended_at": iso_z(row.ended_at),
        "approved_by": row.approved_by,
    }


def find_grant_id(session: Session, text: str) -> uuid.UUID:
    """A grant from its id, its request's id, or a unique prefix of either (as the table shows).

    Raises LookupError with a message for a person when there is none, or more than one.
    """
    prefix = text.strip().lower()
    if len(prefix) < 8:
        raise LookupError("give at least the first 8 characters of the id")
    as_text = func.cast(Grant.id, String)
    request_text = func.cast(Grant.request_id, String)
    matches = session.scalars(
        select(Grant.id).where(or_(as_text.startswith(prefix), request_text.startswith(prefix)))
    ).all()
    if not matches:
        raise LookupError(f"no grant or request id starts with {prefix!r}")
    if len(matches) > 1:
        raise LookupError(f"{len(matches)} grants match {prefix!r}; give more of the id")
    return matches[0]
