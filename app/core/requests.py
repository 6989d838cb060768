"""Access requests: validate, submit, route, decide. The request half of the state machine."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.approvers import Approvers
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.durations import describe_duration
from app.core.errors import AlreadyDecided, InvalidRequest, NotAllowed, RequestNotFound
from app.core.hooks import AfterHooks
from app.core.lifecycle import GrantLifecycle
from app.core.limits import RequesterLimits, limit_problem, lock_requester
from app.core.models import (
    AccessRequest,
    Approval,
    Grant,
    GrantState,
    RequestKind,
    RequestState,
)
from app.core.ports import Clock, Directory, DirectoryError, Notifier, Person, Wakeups
from app.core.routing import Route, Router
from app.core.views import RequestView
from app.workflows.loader import Registry
from app.workflows.model import Resource, Workflow

log = logging.getLogger(__name__)

MAX_JUSTIFICATION = 3000


@dataclass(frozen=True)
class Page:
    items: list[RequestView]  # newest first
    total: int  # how many there are in all


@dataclass(frozen=True)
class Overview:
    active: Page  # my access that is live (or being granted, or being revoked)
    pending: Page  # my requests waiting for a decision
    to_decide: Page  # others' pending requests I may approve
    history: Page  # my finished requests


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
        wakeups: Wakeups,
        clock: Clock,
        limits: RequesterLimits | None = None,
    ) -> None:
        self.limits = limits or RequesterLimits()
        self.wakeups = wakeups
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
        self,
        *,
        resource_id: str | None,
        duration_seconds: str | None,
        justification: str | None,
        ticket: str | None = None,
    ) -> dict[str, str]:
        """Every way the submission breaks the policy, by field; empty when it is valid."""
        errors: dict[str, str] = {}
        found = self.registry.find(resource_id) if resource_id else None
        rule = found[0].ticket if found else None
        ticket_problem = rule.problem(ticket) if rule else None
        if ticket_problem:
            errors["ticket"] = ticket_problem
        if not resource_id:
            errors["resource"] = "Choose a resource."
        elif found is None:
            errors["resource"] = f"Unknown resource {resource_id[:100]!r}."
        problem = justification_problem(justification, "Say why you need this access.")
        if problem:
            errors["justification"] = problem
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

    def limit_problem(self, requester_id: str) -> str | None:
        """Why this person may not file another request now (one indexed count), or None."""
        with self.sessions.begin() as session:
            return limit_problem(session, requester_id, self.limits, self.clock())

    # -- submit ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        requester_id: str,
        resource_id: str,
        duration_seconds: str,
        justification: str,
        ticket: str | None = None,
        submission_id: str | None = None,
    ) -> RequestView:
        """File a request. `submission_id` (Slack's view id) makes it idempotent: a replayed
        submission returns the request the first one created, and changes nothing."""
        errors = self.validate(
            resource_id=resource_id,
            duration_seconds=duration_seconds,
            justification=justification,
            ticket=ticket,
        )
        if errors:
            raise InvalidRequest(errors)
        found = self.registry.find(resource_id)
        duration = parse_seconds(duration_seconds)
        assert found is not None and duration is not None
        person = self.directory.person(requester_id)
        return self._create(
            found,
            person,
            duration,
            justification.strip(),
            ticket=ticket,
            submission_id=submission_id,
        )

    def _create(
        self,
        found: tuple[Workflow, Resource],
        person: Person,
        duration: timedelta,
        justification: str,
        extends: Grant | None = None,
        ticket: str | None = None,
        route: Route | None = None,
        submission_id: str | None = None,
    ) -> RequestView:
        """Store a new request, route it (after Slack's ack), and tell everyone. `route`: a
        decision already taken (break-glass), instead of the on-call check and hooks."""
        workflow, resource = found
        now = self.clock()
        ticket = (ticket or "").strip() or None
        if workflow.ticket is None:
            ticket = None  # the workflow asks for none: nothing to show or link
        ticket_url = workflow.ticket.link(ticket) if workflow.ticket and ticket else None
        with self.sessions.begin() as session:
            lock_requester(session, person.slack_id)  # parallel submissions count one by one
            if submission_id is not None:
                earlier = session.scalar(
                    select(AccessRequest.id).where(AccessRequest.slack_view_id == submission_id)
                )
                if earlier is not None:
                    log.warning("ignored a replayed submission of request %s", earlier)
                    return self._view(session.get_one(AccessRequest, earlier))
            problem = limit_problem(session, person.slack_id, self.limits, now)
            if problem:
                raise InvalidRequest({"limit": problem})
            request = AccessRequest(
                id=uuid.uuid4(),
                workflow=workflow.name,
                resource_id=resource.id,
                requester_slack_id=person.slack_id,
                requester_email=person.email,
                requester_name=person.name,
                justification=justification,
                duration=duration,
                state=RequestState.PENDING,
                created_at=now,
                approvers_channel=workflow.approvers_channel,
                required_approvals=workflow.required_approvals_for(resource),
                kind=RequestKind.EXTENSION if extends else RequestKind.ACCESS,
                extends_grant_id=extends.id if extends else None,
                pending_until=now + workflow.request_ttl,
                ticket=ticket,
                ticket_url=ticket_url,
                slack_view_id=submission_id,
            )
            session.add(request)
            audit.record(
                session,
                Event.EXTENSION_REQUESTED if extends else Event.REQUESTED,
                actor=person.slack_id,
                request_id=request.id,
                grant_id=extends.id if extends else None,
                workflow=workflow.name,
                resource=resource.id,
                duration_seconds=int(duration.total_seconds()),
                justification=justification,
                **({"ticket": ticket, "ticket_url": ticket_url} if ticket else {}),
                **({"via": route.via} if route is not None else {}),
            )
            request_id = request.id
        if route is not None:
            return self._record_route(request_id, route)
        # The on-call check and the workflow's hook: never on Slack's 3-second path.
        route = self.router.route(
            workflow,
            resource,
            person,
            duration=duration,
            justification=justification,
            request_id=str(request_id),
            extension=extends is not None,
            ticket=ticket,
        )
        return self._record_route(request_id, route)

    def submit_decided(
        self,
        found: tuple[Workflow, Resource],
        person: Person,
        duration: timedelta,
        justification: str,
        route: Route,
        *,
        submission_id: str | None = None,
    ) -> RequestView:
        """Store a request whose decision is already taken (break-glass), and carry it out."""
        return self._create(
            found, person, duration, justification, route=route, submission_id=submission_id
        )

    def _record_route(self, request_id: uuid.UUID, route: Route) -> RequestView:
        """Store what routing decided, if nobody decided first; tell everyone. Returns the
        request as that transaction left it.

        Routing runs with no lock held (PagerDuty, the workflow's hook), so an approver may
        have decided, or the requester cancelled, meanwhile: then routing's result is only
        recorded as too late. The on-call cap is counted here, under a lock per requester, so
        parallel submissions cannot pass it together."""
        with self.sessions.begin() as session:
            request = session.get_one(AccessRequest, request_id, with_for_update=True)
            if request.state != RequestState.PENDING or request.routed_at is not None:
                audit.record(
                    session,
                    Event.ROUTE_TOO_LATE,
                    actor=SYSTEM_ACTOR,
                    request_id=request_id,
                    action=route.action,
                    reason=route.reason,
                    state=request.state,
                )
                return self._view(request)
            if route.action == "approve" and route.cap is not None:
                route = self._within_cap(session, request, route)
            request.routed_at = self.clock()
            request.decision_note = route.reason
            if route.action == "route":
                if route.reason is not None:
                    audit.record(
                        session,
                        Event.ROUTED,
                        actor=SYSTEM_ACTOR,
                        request_id=request_id,
                        reason=route.reason,
                        **route.evidence,
                    )
                view = self._view(request)
                self.notifier.request_submitted(session, view)
                self.wakeups.wake_at(request.pending_until or self.clock())
                workflow = self.registry.workflow(request.workflow)
                if workflow is not None and workflow.escalate_after is not None:
                    self.wakeups.wake_at(request.created_at + workflow.escalate_after)
                return view
            request.auto_approved = route.action == "approve"
            request.decided_via = route.via
            request.not_after = route.not_after if route.action == "approve" else None
            evidence = {"via": route.via, "reason": route.reason, **route.evidence}
            if not route.announce:
                evidence["announced"] = False  # OnCall(announce=False): no FYI post
            if route.action == "deny":
                self._close(session, request, RequestState.DENIED, SYSTEM_ACTOR, **evidence)
            else:
                self._approve(session, request, SYSTEM_ACTOR, **evidence)
            session.flush()
            view = self._view(request)
            self.notifier.request_auto_decided(session, view, announce=route.announce)
        if route.action == "deny":
            self.hooks.run("after_deny", view)
        self.lifecycle.on_due()
        return view

    def _within_cap(self, session: Session, request: AccessRequest, route: Route) -> Route:
        """The route, or a route to humans when the requester reached the on-call cap."""
        assert route.cap is not None
        limit, interval = route.cap
        session.execute(
            select(
                func.pg_advisory_xact_lock(
                    func.hashtext("auto-approve:" + request.requester_slack_id)
                )
            )
        )
        count = session.scalar(
            select(func.count())
            .select_from(AccessRequest)
            .where(
                AccessRequest.requester_slack_id == request.requester_slack_id,
                AccessRequest.auto_approved.is_(True),
                AccessRequest.decided_via == "on_call",
                AccessRequest.decided_at >= self.clock() - interval,
            )
        )
        if (count or 0) < limit:
            return route
        return Route(
            "route",
            f"Not auto-approved: the requester reached the cap of {limit} on-call "
            f"auto-approvals in {describe_duration(interval)}.",
            evidence=route.evidence,
        )

    def reroute_stuck(self, *, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Requests whose routing never finished (the process stopped mid-way) go to the
        approvers, so none waits unseen until it expires."""
        with self.sessions.begin() as session:
            stuck = session.scalars(
                select(AccessRequest.id)
                .where(
                    AccessRequest.routed_at.is_(None),
                    AccessRequest.state == RequestState.PENDING,
                    AccessRequest.created_at <= self.clock() - older_than,
                )
                .order_by(AccessRequest.created_at)
                .limit(500)
            ).all()
        for request_id in stuck:
            self._record_route(
                request_id,
                Route(
                    "route",
                    "⚠️ Routing did not finish (accessbot restarted), so an approver must decide.",
                ),
            )
        return len(stuck)

    def posted(self, request_id: uuid.UUID, channel: str, ts: str) -> None:
        """The approvers' message of a request now exists (the outbox delivered it)."""
        with self.sessions.begin() as session:
            session.execute(
                update(AccessRequest)
                .where(AccessRequest.id == request_id)
                .values(approvers_message_ts=ts, approvers_channel=channel)
            )

    def _approve(
        self, session: Session, request: AccessRequest, actor: str, **detail: object
    ) -> None:
        """Mark approved; a new grant for the workers, or an extension of the one it extends."""
        now = self.clock()
        request.state = RequestState.APPROVED
        request.decided_at = now
        request.decided_by = actor
        if request.ticket:
            detail = {**detail, "ticket": request.ticket, "ticket_url": request.ticket_url}
        audit.record(session, Event.APPROVED, actor=actor, request_id=request.id, **detail)
        if request.kind == RequestKind.EXTENSION:
            assert request.extends_grant_id is not None
            self.lifecycle.queue_extension(session, request.extends_grant_id, request.id)
            return
        session.add(
            Grant(
                id=uuid.uuid4(),
                request=request,
                state=GrantState.GRANTING,
                next_attempt_at=now,
                due_at=now,
            )
        )

    def _close(
        self,
        session: Session,
        request: AccessRequest,
        state: RequestState,
        actor: str,
        **detail: object,
    ) -> None:
        request.state = state
        request.decided_at = self.clock()
        request.decided_by = actor
        event = {
            RequestState.DENIED: Event.DENIED,
            RequestState.CANCELLED: Event.CANCELLED,
            RequestState.EXPIRED: Event.REQUEST_EXPIRED,
        }[state]
        audit.record(session, event, actor=actor, request_id=request.id, **detail)

    # -- decide ----------------------------------------------------------------------------

    def decide(
        self,
        *,
        request_id: str,
        actor: str,
        approve: bool,
        duration: timedelta | None = None,
    ) -> RequestView:
        """Record an Approve or Deny. Enough distinct approvals approve; one Deny denies.

        `duration`: approve for less than was asked (one of the policy's shorter durations);
        with a quorum, the shortest any approver chose applies.

        Each request is decided exactly once, whoever else clicks at the same moment: the
        decision is taken under a row lock on the request.
        """
        parsed = parse_uuid(request_id)
        with self.sessions.begin() as session:
            request = session.get(AccessRequest, parsed) if parsed else None
            if request is None:
                raise RequestNotFound("That request does not exist.")
            workflow_name, resource_id = request.workflow, request.resource_id
            requester = request.requester_slack_id
        own = actor == requester
        if own and not self._self_approval_allowed(resource_id):
            raise NotAllowed("You can't approve this: it is your own request.")
        self._check_approver(workflow_name, resource_id, actor, "approve this")
        mine = {"self_approved": True} if own else {}  # audited as such

        with self.sessions.begin() as session:
            request = session.scalars(
                select(AccessRequest).where(AccessRequest.id == parsed).with_for_update()
            ).one()
            if request.state != RequestState.PENDING:
                raise AlreadyDecided(self._view(request))
            if approve and duration is not None:
                mine = {**mine, **self._shorten(request, duration)}
            if approve:
                approvers = [a.approver_slack_id for a in request.approvals]
                if actor in approvers:
                    needed = request.required_approvals - len(approvers)
                    raise NotAllowed(
                        f"You already approved this; it needs {needed} more approval(s)."
                    )
                request.approvals.append(
                    Approval(
                        request_id=request.id, approver_slack_id=actor, approved_at=self.clock()
                    )
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
                        **mine,
                    )
                else:
                    self._approve(session, request, actor, approvers=[*approvers, actor], **mine)
            else:
                self._close(session, request, RequestState.DENIED, actor, **mine)
            session.flush()
            view = self._view(request)
            if view.state == RequestState.PENDING:
                self.notifier.request_progress(session, view)
            else:
                self.notifier.request_decided(session, view)
        if view.state == RequestState.DENIED:
            self.hooks.run("after_deny", view)
        elif view.state == RequestState.APPROVED:
            self.lifecycle.on_due()
        return view

    def _shorten(self, request: AccessRequest, duration: timedelta) -> dict[str, int]:
        """Approve for `duration` instead of what was asked; the audit detail that says so."""
        found = self.registry.find(request.resource_id)
        allowed = shorter_durations(found, request.duration) if found else []
        if duration not in allowed:
            choices = ", ".join(describe_duration(d) for d in allowed) or "none"
            raise NotAllowed(
                f"You can't approve {describe_duration(duration)}: shorter durations the "
                f"policy allows for this request are: {choices}."
            )
        asked = request.asked_duration or request.duration
        request.asked_duration = asked
        request.duration = duration
        return {
            "duration_seconds": int(duration.total_seconds()),
            "asked_seconds": int(asked.total_seconds()),
        }

    def _self_approval_allowed(self, resource_id: str) -> bool:
        found = self.registry.find(resource_id)
        return found is not None and found[0].self_approval_for(found[1])

    def _check_approver(self, workflow_name: str, resource_id: str, actor: str, what: str) -> None:
        found = self.registry.find(resource_id)
        workflow = self.registry.workflow(workflow_name)
        if workflow is None or found is None:
            raise NotAllowed(f"You can't {what}: its workflow or resource no longer exists.")
        try:
            allowed = self.approvers.may_approve(workflow, found[1], actor)
        except DirectoryError as exc:
            raise NotAllowed(f"You can't {what} right now: {exc}") from exc
        if not allowed:
            raise NotAllowed(
                f"You can't {what}: you are not an approver of {found[1].name} "
                f"(workflow {workflow_name!r})."
            )

    # -- the requester's own actions ---------------------------------------------------------

    def cancel(self, *, request_id: str, actor: str) -> RequestView:
        """The requester withdraws a pending request."""
        parsed = parse_uuid(request_id)
        with self.sessions.begin() as session:
            request = (
                session.scalars(
                    select(AccessRequest).where(AccessRequest.id == parsed).with_for_update()
                ).one_or_none()
                if parsed
                else None
            )
            if request is None:
                raise RequestNotFound("That request does not exist.")
            if request.requester_slack_id != actor:
                raise NotAllowed("Only the requester can cancel a request.")
            if request.state != RequestState.PENDING:
                raise AlreadyDecided(self._view(request))
            self._close(session, request, RequestState.CANCELLED, actor)
            session.flush()
            view = self._view(request)
            self.notifier.request_closed(session, view)
        return view

    def revoke_early(
        self, *, grant_id: str, actor: str, reason: str | None = None, as_admin: bool = False
    ) -> RequestView:
        """Give access back now: the requester, an approver of the resource, or an admin."""
        grant = self._grant(grant_id)
        request = grant.request
        if not as_admin and actor != request.requester_slack_id:
            self._check_approver(request.workflow, request.resource_id, actor, "revoke this")
        return self.lifecycle.revoke_now(grant.id, actor=actor, reason=reason)

    def extension_choices(
        self, *, grant_id: str, actor: str
    ) -> tuple[RequestView, list[timedelta]]:
        """The grant (as its request's view) and the durations `actor` may add to it without
        passing the policy's `max_duration`."""
        grant = self._grant(grant_id)
        if grant.request.requester_slack_id != actor:
            raise NotAllowed("Only the person who holds this access can extend it.")
        if grant.state != GrantState.ACTIVE or grant.expires_at is None:
            raise NotAllowed("This access is no longer active, so it can't be extended.")
        found = self.registry.find(grant.request.resource_id)
        if found is None:
            raise NotAllowed("This resource is no longer in the workflows.")
        workflow, resource = found
        limit = workflow.max_duration_for(resource)
        assert grant.granted_at is not None
        held = grant.expires_at - grant.granted_at
        choices = [
            d for d in workflow.durations_for(resource) if limit is None or held + d <= limit
        ]
        if not choices:
            raise NotAllowed(
                f"This access already lasts {describe_duration(held)}; the policy allows at "
                f"most {describe_duration(limit)} in all."  # type: ignore[arg-type]
            )
        return self.view(grant.request_id), choices

    def request_extension(
        self,
        *,
        grant_id: str,
        actor: str,
        duration_seconds: str | None,
        justification: str | None,
        submission_id: str | None = None,
    ) -> RequestView:
        errors = self.validate_extension(
            grant_id=grant_id,
            actor=actor,
            duration_seconds=duration_seconds,
            justification=justification,
        )
        if errors:  # validation has checked the grant, its holder and the duration
            raise InvalidRequest(errors)
        grant = self._grant(grant_id)
        found = self.registry.find(grant.request.resource_id)
        duration = parse_seconds(duration_seconds)
        assert found is not None and duration is not None
        person = self.directory.person(actor)
        return self._create(
            found,
            person,
            duration,
            (justification or "").strip(),
            extends=grant,
            ticket=grant.request.ticket,  # an extension belongs to the same ticket
            submission_id=submission_id,
        )

    def validate_extension(
        self,
        *,
        grant_id: str,
        actor: str,
        duration_seconds: str | None,
        justification: str | None,
    ) -> dict[str, str]:
        errors: dict[str, str] = {}
        try:
            _, choices = self.extension_choices(grant_id=grant_id, actor=actor)
        except (NotAllowed, RequestNotFound) as exc:
            return {"duration": str(exc)}
        duration = parse_seconds(duration_seconds)
        if duration is None:
            errors["duration"] = "Choose how much longer."
        elif duration not in choices:
            allowed = ", ".join(describe_duration(d) for d in choices)
            errors["duration"] = f"Choose one of: {allowed} (the policy's maximum in all)."
        problem = justification_problem(justification, "Say why you need more time.")
        if problem:
            errors["justification"] = problem
        return errors

    # -- sweeping ------------------------------------------------------------------------------

    def expire_pending(self) -> int:
        """Requests nobody decided within their workflow's request_ttl expire."""
        expired = 0
        while True:
            with self.sessions.begin() as session:
                request = session.scalars(
                    select(AccessRequest)
                    .where(
                        AccessRequest.state == RequestState.PENDING,
                        AccessRequest.pending_until <= self.clock(),
                    )
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if request is None:
                    return expired
                self._close(session, request, RequestState.EXPIRED, SYSTEM_ACTOR)
                session.flush()
                self.notifier.request_closed(session, self._view(request))
            expired += 1

    # -- reading ---------------------------------------------------------------------------

    def overview(self, slack_id: str, *, limit: int = 50, decisions: bool = True) -> Overview:
        """What one person sees of accessbot: their access, their requests, their decisions.

        `decisions=False` skips what waits for their decision, which may ask Slack who
        approves (not for Slack's 3-second path)."""
        mine = AccessRequest.requester_slack_id == slack_id
        live = Grant.state.in_([GrantState.GRANTING, GrantState.ACTIVE, GrantState.REVOKING])
        with self.sessions.begin() as session:
            active = self._page(
                session,
                select(AccessRequest)
                .join(Grant, Grant.request_id == AccessRequest.id)
                .where(mine, live),
                limit,
            )
            pending = self._page(
                session,
                select(AccessRequest).where(mine, AccessRequest.state == RequestState.PENDING),
                limit,
            )
            history = self._page(
                session,
                select(AccessRequest)
                .outerjoin(Grant, Grant.request_id == AccessRequest.id)
                .where(
                    mine,
                    AccessRequest.state != RequestState.PENDING,
                    or_(Grant.id.is_(None), ~live),
                ),
                limit,
            )
            waiting = session.scalars(
                select(AccessRequest)
                .where(
                    AccessRequest.state == RequestState.PENDING,
                    AccessRequest.requester_slack_id != slack_id,
                )
                .order_by(AccessRequest.created_at.desc())
                .limit(200 if decisions else 0)
            ).all()
            candidates = [
                self._view(r)
                for r in waiting
                if slack_id not in {a.approver_slack_id for a in r.approvals}
            ]
        # Who may decide can ask Slack (user groups, channel members): with the session closed,
        # so no transaction stays open across the call.
        to_decide = [v for v in candidates if self._may_decide(v.workflow, v.resource_id, slack_id)]
        return Overview(
            active=active,
            pending=pending,
            to_decide=Page(to_decide[:limit], len(to_decide)),
            history=history,
        )

    def _page(self, session: Session, query: Select[tuple[AccessRequest]], limit: int) -> Page:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(AccessRequest.created_at.desc()).limit(limit)).all()
        return Page([self._view(r) for r in rows], total)

    def _may_decide(self, workflow_name: str, resource_id: str, slack_id: str) -> bool:
        workflow = self.registry.workflow(workflow_name)
        found = self.registry.find(resource_id)
        if workflow is None or found is None:
            return False
        try:
            return self.approvers.may_approve(workflow, found[1], slack_id)
        except DirectoryError:
            return False

    def _grant(self, grant_id: str) -> Grant:
        parsed = parse_uuid(grant_id)
        with self.sessions.begin() as session:
            grant = session.get(Grant, parsed) if parsed else None
            if grant is None:
                raise RequestNotFound("That access grant does not exist.")
            return grant

    def find_view(self, request_id: uuid.UUID) -> RequestView | None:
        with self.sessions.begin() as session:
            request = session.get(AccessRequest, request_id)
            return self._view(request) if request else None

    def next_pending_expiry(self) -> datetime | None:
        with self.sessions.begin() as session:
            return session.scalar(
                select(func.min(AccessRequest.pending_until)).where(
                    AccessRequest.state == RequestState.PENDING
                )
            )

    def find_view_in(self, session: Session, request: AccessRequest) -> RequestView:
        """The view of a request loaded in `session` (for a notifier, in that transaction)."""
        return self._view(request)

    def view(self, request_id: uuid.UUID) -> RequestView:
        with self.sessions.begin() as session:
            return self._view(session.get_one(AccessRequest, request_id))

    def _view(self, request: AccessRequest) -> RequestView:
        found = self.registry.find(request.resource_id)
        view = RequestView.of(request, found[1].name if found else None)
        if found and view.state == RequestState.PENDING:
            view = replace(view, shorter=tuple(shorter_durations(found, view.duration)))
        if found and view.decided_via == "break_glass" and found[0].break_glass is not None:
            view = replace(view, alert=found[0].break_glass.mention())
        return view


def shorter_durations(found: tuple[Workflow, Resource], duration: timedelta) -> list[timedelta]:
    return found[0].shorter_durations_for(found[1], duration)


def justification_problem(justification: str | None, when_empty: str) -> str | None:
    text = (justification or "").strip()
    if not text:
        return when_empty
    if len(text) > MAX_JUSTIFICATION:
        return f"Keep it to {MAX_JUSTIFICATION} characters (this is {len(text)})."
    return None


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
