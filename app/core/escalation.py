"""Stale requests escalate: a request nobody decided within its workflow's `escalate_after` is
re-posted to `escalate_to` (a channel, or a user group called in the approvers' channel), once,
with how long it has waited. Run by the scheduler's sweep; no Slack here (the Notifier)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.models import AccessRequest, RequestState
from app.core.ports import Clock, Notifier
from app.core.views import RequestView
from app.workflows.loader import Registry

BATCH = 100


class Escalations:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: Registry,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.notifier = notifier
        self.clock = clock

    def escalate_stale(self) -> int:
        """Escalate every request that has waited past its workflow's `escalate_after`. Each is
        escalated once: `escalated_at` is set in the transaction that writes the message, under
        a row lock that other processes skip."""
        escalated = 0
        for workflow in self.registry.workflows:
            if workflow.escalate_after is None or workflow.escalate_to is None:
                continue
            while True:
                with self.sessions.begin() as session:
                    now = self.clock()
                    stale = session.scalars(
                        select(AccessRequest)
                        .where(
                            AccessRequest.workflow == workflow.name,
                            AccessRequest.state == RequestState.PENDING,
                            AccessRequest.routed_at.is_not(None),  # it reached the approvers
                            AccessRequest.escalated_at.is_(None),
                            AccessRequest.created_at <= now - workflow.escalate_after,
                        )
                        .order_by(AccessRequest.created_at)
                        .limit(BATCH)
                        .with_for_update(skip_locked=True)
                    ).all()
                    for request in stale:
                        waited = now - request.created_at
                        request.escalated_at = now
                        audit.record(
                            session,
                            Event.ESCALATED,
                            actor=SYSTEM_ACTOR,
                            request_id=request.id,
                            escalated_to=workflow.escalate_to,
                            waited_seconds=int(waited.total_seconds()),
                        )
                        session.flush()
                        self.notifier.request_escalated(
                            session, self._view(request), workflow.escalate_to, waited
                        )
                escalated += len(stale)
                if len(stale) < BATCH:
                    break
        return escalated

    def next_escalation(self) -> datetime | None:
        """When the next pending request falls due for escalation, for the scheduler."""
        times = []
        with self.sessions() as session:
            for workflow in self.registry.workflows:
                if workflow.escalate_after is None or workflow.escalate_to is None:
                    continue
                oldest = session.scalar(
                    select(func.min(AccessRequest.created_at)).where(
                        AccessRequest.workflow == workflow.name,
                        AccessRequest.state == RequestState.PENDING,
                        AccessRequest.routed_at.is_not(None),
                        AccessRequest.escalated_at.is_(None),
                    )
                )
                if oldest is not None:
                    times.append(oldest + workflow.escalate_after)
        return min(times, default=None)

    def _view(self, request: AccessRequest) -> RequestView:
        found = self.registry.find(request.resource_id)
        view = RequestView.of(request, found[1].name if found else None)
        if found:  # the escalated post offers the same choices as the approvers' message
            shorter = found[0].shorter_durations_for(found[1], view.duration)
            view = replace(view, shorter=tuple(shorter))
        return view
