"""Access requests: submit, validate, decide. The request half of the state machine."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.durations import describe_duration
from app.core.errors import AlreadyDecided, InvalidRequest, NotAllowed, RequestNotFound
from app.core.lifecycle import GrantLifecycle
from app.core.models import AccessRequest, Grant, GrantState, RequestState
from app.core.ports import Clock, Directory, Notifier, Person
from app.core.routing import Route, Router
from app.core.views import RequestView
from app.workflows.loader import Registry

log = logging.getLogger(__name__)

MAX_JUSTIFICATION = 3000


class AccessRequests:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: Registry,
        directory: Directory,
        notifier: Notifier,
        lifecycle: GrantLifecycle,
        router: Router,
        clock: Clock,
    ) -> None:
        self.router = router
        self.sessions = sessions
        self.registry = registry
        self.directory = directory
        self.notifier = notifier
        self.lifecycle = lifecycle
        self.clock = clock

    # -- validation (cheap: safe on Slack's 3-second path) ---------------------------------

    def validate(
        self, *, resource_id: str | None, duration_seconds: str | None, justification: str | None
    ) -> dict[str, str]:
        """Every way the submission breaks the policy, by field; empty when it is valid."""
        errors: dict[str, str] = {}
        found = self.registry.find(resource_id) if resource_id else None
        if not resource_id:
            errors["resource"] = "Choose a resource."
        elif found is None:
            errors["resource"] = f"Unknown resource {resource_id[:100]!r}."
        text = (justification or "").strip()
        if not text:
            errors["justification"] = "Say why you need this access."
        elif len(text) > MAX_JUSTIFICATION:
            errors["justification"] = (
                f"Keep it to {MAX_JUSTIFICATION} characters (this is {len(text)})."
            )
        duration = _parse_seconds(duration_seconds)
        if duration is None:
            errors["duration"] = "Choose a duration."
        elif found is not None:
            workflow, resource = found
            allowed = workflow.durations_for(resource)
            if duration not in allowed:
                choices = ", ".join(describe_duration(d) for d in allowed)
                errors["duration"] = f"{resource.name} can be requested for: {choices}."
        return errors

    # -- submit ----------------------------------------------------------------------------

    def submit(
        self, *, requester_id: str, resource_id: str, duration_seconds: str, justification: str
    ) -> RequestView:
        errors = self.validate(
            resource_id=resource_id, duration_seconds=duration_seconds, justification=justification
        )
        if errors:
            raise InvalidRequest(errors)
        found = self.registry.find(resource_id)
        assert found is not None
        workflow, resource = found
        person: Person = self.directory.person(requester_id)
        duration = _parse_seconds(duration_seconds)
        assert duration is not None
        with self.sessions.begin() as session:
            request = AccessRequest(
                id=uuid.uuid4(),
                workflow=workflow.name,
                resource_id=resource.id,
                requester_slack_id=person.slack_id,
                requester_email=person.email,
                requester_name=person.name,
                justification=justification.strip(),
                duration=duration,
                state=RequestState.PENDING,
                created_at=self.clock(),
                approvers_channel=workflow.approvers_channel,
            )
            session.add(request)
            audit.record(
                session,
                Event.REQUESTED,
                actor=person.slack_id,
                request_id=request.id,
                workflow=workflow.name,
                resource=resource.id,
                duration_seconds=int(duration.total_seconds()),
                justification=request.justification,
            )
            session.flush()
            request_id = request.id
        route = self.router.route(workflow, person)  # may ask PagerDuty: never before the ack
        grant_id = self._record_route(request_id, route)
        view = self.view(request_id)
        if route.auto_approve:
            message = self.notifier.request_auto_approved(view)
        else:
            message = self.notifier.request_submitted(view)
        if message is not None:
            with self.sessions.begin() as session:
                stored = session.get_one(AccessRequest, request_id)
                stored.approvers_message_ts = message.ts
                stored.approvers_channel = message.channel
        if grant_id is not None:
            self.lifecycle.provision(grant_id)
        return self.view(request_id)

    def _record_route(self, request_id: uuid.UUID, route: Route) -> uuid.UUID | None:
        """Approve automatically, or note why humans decide. Returns the grant to carry out."""
        if not route.auto_approve and route.reason is None:
            return None
        with self.sessions.begin() as session:
            request = session.get_one(AccessRequest, request_id, with_for_update=True)
            request.decision_note = route.reason
            if not route.auto_approve:
                audit.record(
                    session,
                    Event.ROUTED,
                    actor=SYSTEM_ACTOR,
                    request_id=request_id,
                    reason=route.reason,
                    **route.evidence,
                )
                return None
            now = self.clock()
            request.state = RequestState.APPROVED
            request.auto_approved = True
            request.decided_at = now
            request.decided_by = SYSTEM_ACTOR
            audit.record(
                session,
                Event.APPROVED,
                actor=SYSTEM_ACTOR,
                request_id=request_id,
                via="on_call",
                **route.evidence,
            )
            grant = Grant(
                id=uuid.uuid4(), request=request, state=GrantState.GRANTING, next_attempt_at=now
            )
            session.add(grant)
            return grant.id

    # -- decide ----------------------------------------------------------------------------

    def decide(self, *, request_id: str, actor: str, approve: bool) -> RequestView:
        """Approve or deny, exactly once, whoever else clicks at the same moment."""
        parsed = _parse_uuid(request_id)
        if parsed is None:
            raise RequestNotFound("That request does not exist.")
        grant_id: uuid.UUID | None = None
        with self.sessions.begin() as session:
            request = session.scalars(
                select(AccessRequest).where(AccessRequest.id == parsed).with_for_update()
            ).one_or_none()
            if request is None:
                raise RequestNotFound("That request does not exist.")
            workflow = self.registry.workflow(request.workflow)
            if actor == request.requester_slack_id:
                raise NotAllowed("You can't approve this: it is your own request.")
            if workflow is None or not workflow.may_approve(actor):
                raise NotAllowed(
                    f"You can't approve this: you are not an approver of the "
                    f"{request.workflow!r} workflow."
                )
            if request.state != RequestState.PENDING:
                raise AlreadyDecided(self._view(request))
            now = self.clock()
            request.state = RequestState.APPROVED if approve else RequestState.DENIED
            request.decided_at = now
            request.decided_by = actor
            audit.record(
                session,
                Event.APPROVED if approve else Event.DENIED,
                actor=actor,
                request_id=request.id,
            )
            if approve:
                grant = Grant(
                    id=uuid.uuid4(), request=request, state=GrantState.GRANTING, next_attempt_at=now
                )
                session.add(grant)
                grant_id = grant.id
            session.flush()
            view = self._view(request)
        self.notifier.request_decided(view)
        if grant_id is not None:
            self.lifecycle.provision(grant_id)
            view = self.view(view.id)
        return view

    # -- reading ---------------------------------------------------------------------------

    def view(self, request_id: uuid.UUID) -> RequestView:
        with self.sessions() as session:
            return self._view(session.get_one(AccessRequest, request_id))

    def _view(self, request: AccessRequest) -> RequestView:
        found = self.registry.find(request.resource_id)
        return RequestView.of(request, found[1].name if found else None)


def _parse_seconds(value: str | None) -> timedelta | None:
    try:
        seconds = int(value or "")
    except ValueError:
        return None
    return timedelta(seconds=seconds) if seconds > 0 else None


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
