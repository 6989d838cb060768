"""Stale requests escalate: a request nobody decided within its workflow's `escalate_after` is
re-posted to `escalate_to` (a channel, a user group called in the approvers' channel, or, with
ON_CALL_APPROVERS, a DM to each approver PagerDuty shows on call now), once, with how long it
has waited. Run by the scheduler's sweep; no Slack here (the Notifier).

Who is on call is asked (Slack, PagerDuty) with no transaction open; the escalation is then
recorded under a row lock, only if nobody decided or escalated meanwhile."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.approvers import Approvers
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.models import AccessRequest, RequestState
from app.core.ports import Clock, Directory, DirectoryError, Notifier
from app.core.routing import pagerduty_email
from app.core.views import RequestView
from app.oncall import OnCallChecker
from app.workflows.loader import Registry
from app.workflows.model import ON_CALL_APPROVERS, OnCall, Resource, Workflow

BATCH = 100


class Escalations:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: Registry,
        notifier: Notifier,
        clock: Clock,
        approvers: Approvers | None = None,
        directory: Directory | None = None,
        oncall: OnCallChecker | None = None,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.notifier = notifier
        self.clock = clock
        self.approvers = approvers
        self.directory = directory
        self.oncall = oncall

    def escalate_stale(self) -> int:
        """Escalate every request that has waited past its workflow's `escalate_after`. Each is
        escalated once: `escalated_at` is set in the transaction that writes the message, under
        a row lock that other processes skip."""
        escalated = 0
        for workflow in self.registry.workflows:
            if workflow.escalate_after is None or workflow.escalate_to is None:
                continue
            if workflow.escalate_to == ON_CALL_APPROVERS:
                escalated += self._escalate_to_on_call(workflow)
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

    def _escalate_to_on_call(self, workflow: Workflow) -> int:
        assert workflow.escalate_after is not None
        with self.sessions.begin() as session:
            due = session.execute(
                select(
                    AccessRequest.id, AccessRequest.resource_id, AccessRequest.requester_slack_id
                )
                .where(
                    AccessRequest.workflow == workflow.name,
                    AccessRequest.state == RequestState.PENDING,
                    AccessRequest.routed_at.is_not(None),
                    AccessRequest.escalated_at.is_(None),
                    AccessRequest.created_at <= self.clock() - workflow.escalate_after,
                )
                .order_by(AccessRequest.created_at)
                .limit(BATCH)
            ).all()
        escalated = 0
        for request_id, resource_id, requester in due:
            found = self.registry.find(resource_id)
            if found is None:
                continue
            people, why = self._approvers_on_call(workflow, found[1], requester)
            with self.sessions.begin() as session:
                request = session.scalars(
                    select(AccessRequest)
                    .where(AccessRequest.id == request_id)
                    .with_for_update(skip_locked=True)
                ).one_or_none()
                if (
                    request is None  # another instance is on it
                    or request.state != RequestState.PENDING
                    or request.escalated_at is not None
                ):
                    continue
                now = self.clock()
                waited = now - request.created_at
                request.escalated_at = now
                audit.record(
                    session,
                    Event.ESCALATED,
                    actor=SYSTEM_ACTOR,
                    request_id=request.id,
                    escalated_to=ON_CALL_APPROVERS,
                    on_call_approvers=people,
                    waited_seconds=int(waited.total_seconds()),
                    **({"note": why} if why else {}),
                )
                session.flush()
                self.notifier.request_escalated(
                    session, self._view(request), ON_CALL_APPROVERS, waited, people=people, why=why
                )
            escalated += 1
        return escalated

    def _approvers_on_call(
        self, workflow: Workflow, resource: Resource, requester: str
    ) -> tuple[list[str], str | None]:
        """The resource's approvers PagerDuty shows on call now (never the requester), and why
        there are none when that is because something could not be asked."""
        if self.oncall is None or self.approvers is None or self.directory is None:
            return [], "PagerDuty is not configured (PAGERDUTY_API_TOKEN)"
        rule = workflow.auto_approve or OnCall()
        try:
            candidates = sorted(self.approvers.resolve(workflow, resource) - {requester})
        except DirectoryError as exc:
            return [], f"the approvers could not be listed ({exc})"
        on_call: list[str] = []
        undecided = 0
        for slack_id in candidates:
            email = pagerduty_email(rule, self.directory.person(slack_id).email)
            if not email:
                continue
            result = self.oncall.check(email, rule)
            if result.on_call is True:
                on_call.append(slack_id)
            elif result.on_call is None:
                undecided += 1
        if not on_call and undecided:
            return [], f"PagerDuty could not say for {undecided} approver(s)"
        return on_call, None

    def next_escalation(self) -> datetime | None:
        """When the next pending request falls due for escalation, for the scheduler."""
        times = []
        with self.sessions.begin() as session:
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
