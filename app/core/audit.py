"""The append-only audit log: one row per event, written in the transaction that caused it.

Events recorded in a transaction are written together just before it commits, as one INSERT
in the order they were recorded (one statement for any number of rows: `app.db.rows`; not one
ORM object each: a batch of revocations records two events per grant). A transaction that
rolls back writes none.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from app.core.models import AuditEvent
from app.db.rows import as_arrays, insert_from_arrays

SYSTEM_ACTOR = "accessbot"


class Event(StrEnum):
    REQUESTED = "requested"
    EXTENSION_REQUESTED = "extension_requested"
    CANCELLED = "cancelled"
    REQUEST_EXPIRED = "request_expired"
    EXTENDED = "extended"
    EXTEND_FAILED = "extend_failed"
    REVOKE_REQUESTED = "revoke_requested"
    REMINDED = "reminded"
    ROUTED = "routed_to_approvers"
    ROUTE_TOO_LATE = "route_too_late"  # routing finished after someone else decided
    APPROVAL_RECORDED = "approval_recorded"
    HOOK_FAILED = "hook_failed"
    APPROVED = "approved"
    DENIED = "denied"
    GRANTED = "granted"
    GRANT_ATTEMPT_FAILED = "grant_attempt_failed"
    GRANT_FAILED = "grant_failed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REVOKE_ATTEMPT_FAILED = "revoke_attempt_failed"
    ESCALATED = "escalated"  # a stale request was re-posted to escalate_to
    BREAK_GLASS_REVIEWED = "break_glass_reviewed"
    BREAK_GLASS_REANNOUNCED = "break_glass_reannounced"  # unreviewed in time
    REVOKE_SKIPPED = "revoke_skipped"  # access held before, or another grant still covers it


def record(
    session: Session,
    event: Event,
    *,
    actor: str,
    request_id: uuid.UUID | None,
    grant_id: uuid.UUID | None = None,
    **detail: Any,
) -> None:
    session.info.setdefault(_WAITING, []).append(
        {
            "event": event.value,
            "actor": actor,
            "request_id": request_id,
            "grant_id": grant_id,
            "detail": detail,
        }
    )


_WAITING = "audit_waiting"
_COLUMNS = ("event", "actor", "request_id", "grant_id", "detail")
_INSERT = insert_from_arrays(AuditEvent.__table__, _COLUMNS)


@sqlalchemy_event.listens_for(Session, "before_commit")
def _write_waiting(session: Session) -> None:
    rows = session.info.pop(_WAITING, None)
    if rows:  # one statement for any number of rows, in the order they were recorded
        session.connection().execute(_INSERT, as_arrays(rows, _COLUMNS))


@sqlalchemy_event.listens_for(Session, "after_rollback")
def _forget_waiting(session: Session) -> None:
    session.info.pop(_WAITING, None)
