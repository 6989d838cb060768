"""Plain snapshots of a request and its grant, handed to notifiers after a commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.models import AccessRequest, GrantState, RequestKind, RequestState


@dataclass(frozen=True)
class RequestView:
    id: uuid.UUID
    workflow: str
    resource_id: str
    resource_name: str
    requester_slack_id: str
    requester_email: str | None
    requester_name: str | None
    justification: str
    duration: timedelta
    state: RequestState
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    auto_approved: bool
    decided_via: str | None
    required_approvals: int
    approvals: tuple[str, ...]
    approvers_channel: str
    approvers_message_ts: str | None
    kind: RequestKind = RequestKind.ACCESS
    extends_grant_id: uuid.UUID | None = None
    pending_until: datetime | None = None
    grant_id: uuid.UUID | None = None
    grant_state: GrantState | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    end_note: str | None = None
    grant_attempts: int = 0
    grant_error: str | None = None
    not_after: datetime | None = None  # the access ends by then (the on-call shift's end)
    asked_duration: timedelta | None = None  # set when an approver approved less than asked
    ticket: str | None = None
    reviewed_by: str | None = None  # a break-glass grant's reviewer
    escalated_at: datetime | None = None
    alert: str | None = None  # a break-glass grant's mention (<!here>…), from the workflow
    ticket_url: str | None = None
    shorter: tuple[timedelta, ...] = ()  # while pending: the shorter durations approvers may pick
    held_before: bool = False  # the person had this access before the grant: it stays
    kept: str | None = None  # why the end of the grant sent no revoke (see app.core.overlap)

    @property
    def extended(self) -> bool:
        """The grant lasts longer than first asked for."""
        if self.granted_at is None or self.expires_at is None:
            return False
        return self.expires_at - self.granted_at > self.duration + timedelta(seconds=1)

    @classmethod
    def of(cls, request: AccessRequest, resource_name: str | None = None) -> RequestView:
        grant = request.grant
        return cls(
            id=request.id,
            workflow=request.workflow,
            resource_id=request.resource_id,
            resource_name=resource_name or request.resource_id,
            requester_slack_id=request.requester_slack_id,
            requester_email=request.requester_email,
            requester_name=request.requester_name,
            justification=request.justification,
            duration=request.duration,
            state=RequestState(request.state),
            created_at=request.created_at,
            decided_by=request.decided_by,
            decided_at=request.decided_at,
            decision_note=request.decision_note,
            auto_approved=request.auto_approved,
            decided_via=request.decided_via,
            required_approvals=request.required_approvals,
            approvals=tuple(a.approver_slack_id for a in request.approvals),
            approvers_channel=request.approvers_channel,
            approvers_message_ts=request.approvers_message_ts,
            kind=RequestKind(request.kind),
            extends_grant_id=request.extends_grant_id,
            pending_until=request.pending_until,
            grant_id=grant.id if grant else None,
            grant_state=GrantState(grant.state) if grant else None,
            granted_at=grant.granted_at if grant else None,
            expires_at=grant.expires_at if grant else None,
            ended_at=grant.ended_at if grant else None,
            end_reason=grant.end_reason if grant else None,
            ended_by=grant.ended_by if grant else None,
            end_note=grant.end_note if grant else None,
            grant_attempts=grant.attempts if grant else 0,
            grant_error=grant.last_error if grant else None,
            not_after=request.not_after,
            asked_duration=request.asked_duration,
            ticket=request.ticket,
            reviewed_by=request.reviewed_by,
            escalated_at=request.escalated_at,
            ticket_url=request.ticket_url,
            held_before=grant.held_before if grant else False,
            kept=grant.kept if grant else None,
        )
