"""Typed SQLAlchemy models: requests, grants and the append-only audit log."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Interval, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"  # withdrawn by the requester
    EXPIRED = "expired"  # nobody decided within the workflow's request_ttl


class RequestKind(StrEnum):
    ACCESS = "access"
    EXTENSION = "extension"  # more time on an active grant (extends_grant_id)


class GrantState(StrEnum):
    GRANTING = "granting"  # approved; the grant call has not succeeded yet
    ACTIVE = "active"  # the grant call succeeded; access is live until expires_at
    REVOKING = "revoking"  # due for revocation; the revoke call has not succeeded yet
    REVOKED = "revoked"  # the revoke call succeeded
    FAILED = "failed"  # the grant call kept failing; nothing was granted


class AccessRequest(Base):
    __tablename__ = "access_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    workflow: Mapped[str] = mapped_column(String(200))
    resource_id: Mapped[str] = mapped_column(String(200))
    requester_slack_id: Mapped[str] = mapped_column(String(64))
    requester_email: Mapped[str | None] = mapped_column(String(320))
    requester_name: Mapped[str | None] = mapped_column(String(200))
    justification: Mapped[str] = mapped_column(Text)
    duration: Mapped[timedelta] = mapped_column(Interval)
    state: Mapped[RequestState] = mapped_column(String(20), default=RequestState.PENDING)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_note: Mapped[str | None] = mapped_column(Text)
    auto_approved: Mapped[bool] = mapped_column(default=False, server_default="false")
    required_approvals: Mapped[int] = mapped_column(default=1, server_default="1")
    decided_via: Mapped[str | None] = mapped_column(String(20))  # on_call, policy; None: people
    kind: Mapped[RequestKind] = mapped_column(String(20), default=RequestKind.ACCESS)
    extends_grant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("grants.id", use_alter=True)  # grants also points here: a cycle
    )
    pending_until: Mapped[datetime | None]  # expires undecided after this
    approvers_channel: Mapped[str] = mapped_column(String(64))
    approvers_message_ts: Mapped[str | None] = mapped_column(String(64))
    routed_at: Mapped[datetime | None]  # routing recorded its outcome (None: not yet, or a crash)
    # Access ends by then whatever the duration (OnCall(end_with_shift=True): the shift's end).
    not_after: Mapped[datetime | None]
    # What was asked, when an approver approved a shorter `duration` (None: approved as asked).
    asked_duration: Mapped[timedelta | None] = mapped_column(Interval)
    ticket: Mapped[str | None] = mapped_column(String(100))  # Workflow(ticket=Ticket(...))
    ticket_url: Mapped[str | None] = mapped_column(Text)
    # Re-posted to the workflow's escalate_to (once); for a break-glass grant, re-announced
    # because nobody reviewed it in time (once).
    escalated_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(64))  # a break-glass grant's reviewer
    reviewed_at: Mapped[datetime | None]
    slack_view_id: Mapped[str | None] = mapped_column(String(64))  # one request per submission

    grant: Mapped[Grant | None] = relationship(
        back_populates="request", lazy="selectin", foreign_keys="Grant.request_id"
    )
    approvals: Mapped[list[Approval]] = relationship(
        lazy="selectin", order_by="Approval.approved_at"
    )

    __table_args__ = (
        Index("ix_access_requests_requester", "requester_slack_id", "created_at"),
        Index(
            "uq_access_requests_slack_view_id",
            "slack_view_id",
            unique=True,
            postgresql_where=text("slack_view_id IS NOT NULL"),
        ),
        Index("ix_access_requests_state_pending_until", "state", "pending_until"),
        Index(
            "ix_access_requests_unrouted", "created_at", postgresql_where=text("routed_at IS NULL")
        ),
        Index(
            "ix_access_requests_auto_approved",
            "requester_slack_id",
            "decided_at",
            postgresql_where=text("auto_approved"),
        ),
    )


class Approval(Base):
    """One approver's Approve click. A request is approved once it has enough of them."""

    __tablename__ = "approvals"

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("access_requests.id"), primary_key=True
    )
    approver_slack_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    approved_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    state: Mapped[GrantState] = mapped_column(String(20), default=GrantState.GRANTING)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    granted_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))
    ended_by: Mapped[str | None] = mapped_column(String(64))
    end_note: Mapped[str | None] = mapped_column(Text)  # why it was ended early
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    reminded_at: Mapped[datetime | None]  # the "expires soon" DM went out

    # The work queue. `due_at`: when this grant next needs a worker (its expiry while active,
    # its next attempt while granting or revoking, now for an extension to carry out; None once
    # it is done). A worker leases a due grant, acts with no transaction open, and writes the
    # outcome only while the lease is still its own.
    due_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    extension_request_id: Mapped[uuid.UUID | None]  # an approved extension to carry out

    # What the strategy's grant call said undoes it (handed back at revoke), whether the person
    # had the access before (then it is never taken away), and why a revoke sent nothing.
    undo: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    held_before: Mapped[bool] = mapped_column(default=False, server_default="false")
    kept: Mapped[str | None] = mapped_column(String(20))  # held_before, another_grant

    request: Mapped[AccessRequest] = relationship(
        back_populates="grant", lazy="joined", innerjoin=True, foreign_keys=[request_id]
    )

    __table_args__ = (
        Index("ix_grants_state_expires_at", "state", "expires_at"),
        Index("ix_grants_due_at", "due_at", postgresql_where=text("due_at IS NOT NULL")),
        # The leases in progress: when the first runs out (`GrantLifecycle.next_due`).
        Index(
            "ix_grants_lease_until", "lease_until", postgresql_where=text("lease_until IS NOT NULL")
        ),
    )


class AuditEvent(Base):
    """One row per thing that happened. The database refuses UPDATE, DELETE and TRUNCATE here."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp(), index=True)
    event: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    grant_id: Mapped[uuid.UUID | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class OutboxMessage(Base):
    """A message to deliver, written in the transaction of the change it reports.

    `conversation` orders delivery (one at a time, oldest first, per conversation); `kind` and
    `payload` are the notifier's own (the core never reads them); `collapse_key` lets several
    pending updates of one thing collapse into one delivery of its latest state.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    conversation: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[uuid.UUID | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    collapse_key: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))  # sent, failed, collapsed
    last_error: Mapped[str | None] = mapped_column(Text)
    # Queued behind an older undelivered message of its conversation. Kept by the database
    # (migration 0011's triggers), read only to skip such messages quickly.
    waiting: Mapped[bool] = mapped_column(default=False, server_default="false")

    __table_args__ = (
        Index("ix_outbox_pending", "conversation", "id", postgresql_where=text("done_at IS NULL")),
        # Senders walk the messages that wait for no other, oldest first (`OutboxQueue.claim`).
        Index("ix_outbox_ready", "id", postgresql_where=text("done_at IS NULL AND NOT waiting")),
        Index(
            "ux_outbox_collapse",
            "collapse_key",
            unique=True,
            postgresql_where=text("done_at IS NULL AND lease_owner IS NULL"),
        ),
    )


class AfterAckJob(Base):
    """Work a Slack listener acknowledged and left for later (store a request, record a
    decision), written before the ack goes out: a process that dies after the ack loses
    nothing. Any process that runs the job loop does it (`app/core/jobs.py`); a done job's row
    is deleted, one that kept failing stays with `failed_at` and its last error.

    `kind` names the handler and `args` are its arguments (JSON): the core never reads them.
    """

    __tablename__ = "after_ack_jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    kind: Mapped[str] = mapped_column(String(40))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_after_ack_jobs_ready", "id", postgresql_where=text("failed_at IS NULL")),
    )
