"""Break-glass: in an emergency a permitted person grants themself access at once, with a
mandatory reason. The approvers' channel is alerted at once, any approver marks the grant
Reviewed (or revokes it), and a grant nobody reviewed in time is announced again, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.approvers import Approvers
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.durations import describe_duration
from app.core.errors import InvalidRequest, NotAllowed, RequestNotFound
from app.core.models import AccessRequest, RequestState
from app.core.ports import Clock, Directory, DirectoryError, Notifier, Wakeups
from app.core.requests import AccessRequests, justification_problem, parse_seconds, parse_uuid
from app.core.routing import Route
from app.core.views import RequestView
from app.workflows.loader import Registry

VIA = "break_glass"
BATCH = 100


class BreakGlassAccess:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: Registry,
        requests: AccessRequests,
        approvers: Approvers,
        directory: Directory,
        notifier: Notifier,
        wakeups: Wakeups,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.requests = requests
        self.approvers = approvers
        self.directory = directory
        self.notifier = notifier
        self.wakeups = wakeups
        self.clock = clock

    def validate(
        self, *, resource_id: str | None, duration_seconds: str | None, reason: str | None
    ) -> dict[str, str]:
        """What is wrong with a break-glass request, by field (cheap: for the ack path)."""
        errors: dict[str, str] = {}
        found = self.registry.find(resource_id) if resource_id else None
        if found is None:
            errors["resource"] = f"Unknown resource {(resource_id or '')[:100]!r}."
        elif found[0].break_glass is None:
            errors["resource"] = f"{found[1].name} has no break-glass access."
        duration = parse_seconds(duration_seconds)
        if duration is None:
            errors["duration"] = "Say how long, like 30m or 1h."
        elif found is not None and found[0].break_glass is not None:
            limit = found[0].break_glass.max_duration
            if duration > limit:
                errors["duration"] = f"Break-glass access lasts at most {describe_duration(limit)}."
        problem = justification_problem(reason, "Say why: a reason is mandatory.")
        if problem:
            errors["reason"] = problem
        return errors

    def break_glass(
        self,
        *,
        requester_id: str,
        resource_id: str,
        duration_seconds: str,
        reason: str,
        submission_id: str | None = None,
    ) -> RequestView:
        """Grant at once to a permitted requester. Asks Slack who is permitted: after the ack.
        `submission_id` (the command's trigger id): a replayed command grants nothing more."""
        errors = self.validate(
            resource_id=resource_id, duration_seconds=duration_seconds, reason=reason
        )
        if errors:
            raise InvalidRequest(errors)
        found = self.registry.find(resource_id)
        duration = parse_seconds(duration_seconds)
        assert found is not None and duration is not None and found[0].break_glass is not None
        rule = found[0].break_glass
        try:
            permitted = self.approvers.is_listed(rule.who, requester_id)
        except DirectoryError as exc:
            raise NotAllowed(f"You can't break glass right now: {exc}") from exc
        if not permitted:
            raise NotAllowed(f"You can't break glass for {found[1].name}: you are not listed.")
        person = self.directory.person(requester_id)
        text = reason.strip()
        route = Route("approve", f"Break-glass: {text}", VIA, evidence={"break_glass": True})
        view = self.requests.submit_decided(
            found, person, duration, text, route, submission_id=submission_id
        )
        self.wakeups.wake_at(self.clock() + rule.review_after)
        return view

    def review(self, *, request_id: str, actor: str) -> RequestView:
        """An approver marks a break-glass grant Reviewed (not the person who broke glass)."""
        parsed = parse_uuid(request_id)
        view = self.requests.find_view(parsed) if parsed else None
        if view is None or view.decided_via != VIA:
            raise RequestNotFound("That break-glass grant does not exist.")
        if actor == view.requester_slack_id:
            raise NotAllowed("You can't review your own break-glass access.")
        found = self.registry.find(view.resource_id)
        workflow = self.registry.workflow(view.workflow)
        if found is None or workflow is None:
            raise NotAllowed("You can't review this: its workflow or resource no longer exists.")
        try:
            allowed = self.approvers.may_approve(workflow, found[1], actor)
        except DirectoryError as exc:
            raise NotAllowed(f"You can't review this right now: {exc}") from exc
        if not allowed:
            raise NotAllowed(f"You can't review this: you are not an approver of {found[1].name}.")
        with self.sessions.begin() as session:
            request = session.get_one(AccessRequest, parsed, with_for_update=True)
            if request.reviewed_by is not None:
                raise NotAllowed(f"<@{request.reviewed_by}> already reviewed this.")
            request.reviewed_by = actor
            request.reviewed_at = self.clock()
            audit.record(session, Event.BREAK_GLASS_REVIEWED, actor=actor, request_id=request.id)
            session.flush()
            view = self.requests.find_view_in(session, request)
            self.notifier.request_progress(session, view)
        return view

    def reannounce_unreviewed(self) -> int:
        """Announce again, once, each break-glass grant nobody reviewed within `review_after`."""
        done = 0
        for workflow in self.registry.workflows:
            rule = workflow.break_glass
            if rule is None:
                continue
            while True:
                with self.sessions.begin() as session:
                    now = self.clock()
                    due = session.scalars(
                        self._unreviewed(workflow.name)
                        .where(AccessRequest.decided_at <= now - rule.review_after)
                        .order_by(AccessRequest.decided_at)
                        .limit(BATCH)
                        .with_for_update(skip_locked=True)
                    ).all()
                    for request in due:
                        assert request.decided_at is not None
                        waited = now - request.decided_at
                        request.escalated_at = now
                        audit.record(
                            session,
                            Event.BREAK_GLASS_REANNOUNCED,
                            actor=SYSTEM_ACTOR,
                            request_id=request.id,
                            unreviewed_seconds=int(waited.total_seconds()),
                        )
                        session.flush()
                        view = self.requests.find_view_in(session, request)
                        self.notifier.break_glass_unreviewed(session, view, waited)
                done += len(due)
                if len(due) < BATCH:
                    break
        return done

    def next_reannouncement(self) -> datetime | None:
        times = []
        with self.sessions.begin() as session:
            for workflow in self.registry.workflows:
                rule = workflow.break_glass
                if rule is None:
                    continue
                oldest = session.scalar(
                    self._unreviewed(workflow.name).with_only_columns(
                        func.min(AccessRequest.decided_at)
                    )
                )
                if oldest is not None:
                    times.append(oldest + rule.review_after)
        return min(times, default=None)

    @staticmethod
    def _unreviewed(workflow: str) -> Select[tuple[AccessRequest]]:
        return select(AccessRequest).where(
            AccessRequest.workflow == workflow,
            AccessRequest.decided_via == VIA,
            AccessRequest.state == RequestState.APPROVED,
            AccessRequest.reviewed_at.is_(None),
            AccessRequest.escalated_at.is_(None),
        )
