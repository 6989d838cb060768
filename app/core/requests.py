"""Access requests: validate, submit, route, decide. The request half of the state machine."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.approvers import Approvers
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.durations import describe_duration
from app.core.errors import AlreadyDecided, InvalidRequest, NotAllowed, RequestNotFound
from app.core.hooks import AfterHooks
from app.core.lifecycle import GrantLifecycle
from app.core.models import AccessRequest, Approval, Grant, GrantState, RequestState
from app.core.ports import Clock, Directory, DirectoryError, Notifier, Person
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
        approvers: Approvers,
        notifier: Notifier,
        lifecycle: GrantLifecycle,
        router: Router,
        hooks: AfterHooks,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.directory = directory
        self.approvers = approvers
        self.notifier = notifier
        self.lifecycle = lifecycle
        self.router = router
        self.hooks = hooks
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
        duration = parse_seconds(duration_seconds)
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
        duration = parse_seconds(duration_seconds)
        assert found is not None and duration is not None
        workflow, resource = found
        person: Person = self.directory.person(requester_id)
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
                required_approvals=workflow.required_approvals_for(resource),
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
            request_id = request.id
        # The on-call check and the workflow's hook: never on Slack's 3-second path.
        route = self.router.route(
            workflow,
            resource,
            person,
            duration=duration,
            justification=justification.strip(),
            request_id=str(request_id),
        )
        grant_id = self._record_route(request_id, route)
        view = self.view(request_id)
        if route.action == "route":
            message = self.notifier.request_submitted(view)
        else:
            message = self.notifier.request_auto_decided(view)
        if message is not None:
            with self.sessions.begin() as session:
                stored = session.get_one(AccessRequest, request_id)
                stored.approvers_message_ts = message.ts
                stored.approvers_channel = message.channel
        if route.action == "deny":
            self.hooks.run("after_deny", self.view(request_id))
        if grant_id is not None:
            self.lifecycle.provision(grant_id)
        return self.view(request_id)

    def _record_route(self, request_id: uuid.UUID, route: Route) -> uuid.UUID | None:
        """Store what routing decided. Returns the grant to carry out, if it approved."""
        if route.action == "route" and route.reason is None:
            return None
        with self.sessions.begin() as session:
            request = session.get_one(AccessRequest, request_id, with_for_update=True)
            request.decision_note = route.reason
            if route.action == "route":
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
            request.state = (
                RequestState.APPROVED if route.action == "approve" else RequestState.DENIED
            )
            request.auto_approved = route.action == "approve"
            request.decided_via = route.via
            request.decided_at = now
            request.decided_by = SYSTEM_ACTOR
            audit.record(
                session,
                Event.APPROVED if route.action == "approve" else Event.DENIED,
                actor=SYSTEM_ACTOR,
                request_id=request_id,
                via=route.via,
                reason=route.reason,
                **route.evidence,
            )
            if route.action == "deny":
                return None
            grant = Grant(
                id=uuid.uuid4(), request=request, state=GrantState.GRANTING, next_attempt_at=now
            )
            session.add(grant)
            return grant.id

    # -- decide ----------------------------------------------------------------------------

    def decide(self, *, request_id: str, actor: str, approve: bool) -> RequestView:
        """Record an Approve or Deny. Enough distinct approvals approve; one Deny denies.

        Each request is decided exactly once, whoever else clicks at the same moment: the
        decision is taken under a row lock on the request.
        """
        parsed = parse_uuid(request_id)
        with self.sessions() as session:
            request = session.get(AccessRequest, parsed) if parsed else None
            if request is None:
                raise RequestNotFound("That request does not exist.")
            workflow_name, resource_id = request.workflow, request.resource_id
            requester = request.requester_slack_id
        if actor == requester:
            raise NotAllowed("You can't approve this: it is your own request.")
        found = self.registry.find(resource_id)
        workflow = self.registry.workflow(workflow_name)
        if workflow is None or found is None:
            raise NotAllowed("You can't approve this: its workflow or resource no longer exists.")
        try:
            allowed = self.approvers.may_approve(workflow, found[1], actor)
        except DirectoryError as exc:
            raise NotAllowed(f"You can't approve this right now: {exc}") from exc
        if not allowed:
            raise NotAllowed(
                f"You can't approve this: you are not an approver of {found[1].name} "
                f"(workflow {workflow_name!r})."
            )

        grant_id: uuid.UUID | None = None
        with self.sessions.begin() as session:
            request = session.scalars(
                select(AccessRequest).where(AccessRequest.id == parsed).with_for_update()
            ).one()
            if request.state != RequestState.PENDING:
                raise AlreadyDecided(self._view(request))
            now = self.clock()
            if approve:
                approvers = [a.approver_slack_id for a in request.approvals]
                if actor in approvers:
                    needed = request.required_approvals - len(approvers)
                    raise NotAllowed(
                        f"You already approved this; it needs {needed} more approval(s)."
                    )
                request.approvals.append(
                    Approval(request_id=request.id, approver_slack_id=actor, approved_at=now)
                )
                count = len(approvers) + 1
                if count < request.required_approvals:
                    audit.record(
                        session,
                        Event.APPROVAL_RECORDED,
                        actor=actor,
                        request_id=request.id,
                        approvals=count,
                        required=request.required_approvals,
                    )
                else:
                    request.state = RequestState.APPROVED
                    request.decided_at = now
                    request.decided_by = actor
                    audit.record(
                        session,
                        Event.APPROVED,
                        actor=actor,
                        request_id=request.id,
                        approvers=[*approvers, actor],
                    )
                    grant = Grant(
                        id=uuid.uuid4(),
                        request=request,
                        state=GrantState.GRANTING,
                        next_attempt_at=now,
                    )
                    session.add(grant)
                    grant_id = grant.id
            else:
                request.state = RequestState.DENIED
                request.decided_at = now
                request.decided_by = actor
                audit.record(session, Event.DENIED, actor=actor, request_id=request.id)
            session.flush()
            view = self._view(request)
        if view.state == RequestState.PENDING:
            self.notifier.request_progress(view)
            return view
        self.notifier.request_decided(view)
        if view.state == RequestState.DENIED:
            self.hooks.run("after_deny", view)
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


def parse_seconds(value: str | None) -> timedelta | None:
    try:
        seconds = int(value or "")
    except ValueError:
        return None
    return timedelta(seconds=seconds) if seconds > 0 else None


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
