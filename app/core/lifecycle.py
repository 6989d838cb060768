"""Grants: carry them out, retry them, revoke them at expiry. The grant half of the state machine.

The database is the source of truth. Every attempt claims its grant row with
`SELECT ... FOR UPDATE SKIP LOCKED`, so two processes never work on one grant at once, and
a crash in the middle rolls the attempt back for the next sweep to redo.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.durations import describe_duration
from app.core.errors import NotAllowed
from app.core.hooks import AfterHook, AfterHooks
from app.core.models import AccessRequest, Grant, GrantState
from app.core.ports import Clock, Notifier, Wakeups
from app.core.views import RequestView
from app.grants.base import GrantContext, GrantError, GrantStrategy, GrantUser, Retry
from app.workflows.loader import Registry

log = logging.getLogger(__name__)

MAX_PER_SWEEP = 1000


@dataclass(frozen=True)
class _Outcome:
    """What an attempt changed, to tell people and to book the next wake-up after the commit."""

    view: RequestView
    notify: Callable[[RequestView], bool] | None
    wake_at: datetime | None
    hook: AfterHook | None = None


class GrantLifecycle:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: Registry,
        notifier: Notifier,
        clock: Clock,
        wakeups: Wakeups,
        hooks: AfterHooks,
        reminder: timedelta = timedelta(minutes=10),
        reminder_min_grant: timedelta = timedelta(minutes=30),
    ) -> None:
        self.hooks = hooks
        self.reminder = reminder
        self.reminder_min_grant = reminder_min_grant
        self.sessions = sessions
        self.registry = registry
        self.notifier = notifier
        self.clock = clock
        self.wakeups = wakeups

    def provision(self, grant_id: uuid.UUID) -> None:
        """Attempt one grant now, unless another worker holds it or it is already done."""
        with self.sessions.begin() as session:
            grant = session.scalars(
                select(Grant)
                .where(Grant.id == grant_id, Grant.state == GrantState.GRANTING)
                .with_for_update(of=Grant, skip_locked=True)
            ).one_or_none()
            outcome = self._attempt_grant(session, grant) if grant else None
        self._after(outcome)

    def process_due(self) -> int:
        """Grant, retry and revoke everything that is due. Returns how many grants it handled."""
        handled: set[uuid.UUID] = set()
        while len(handled) < MAX_PER_SWEEP:
            now = self.clock()
            with self.sessions.begin() as session:
                grant = session.scalars(
                    select(Grant)
                    .where(
                        or_(
                            and_(Grant.state == GrantState.ACTIVE, Grant.expires_at <= now),
                            and_(
                                Grant.state.in_([GrantState.GRANTING, GrantState.REVOKING]),
                                Grant.next_attempt_at <= now,
                            ),
                        ),
                        Grant.id.not_in(handled) if handled else true(),
                    )
                    .order_by(Grant.expires_at.nulls_last(), Grant.next_attempt_at)
                    .limit(1)
                    .with_for_update(of=Grant, skip_locked=True)
                ).first()
                if grant is None:
                    break
                handled.add(grant.id)
                if grant.state == GrantState.GRANTING:
                    outcome = self._attempt_grant(session, grant)
                else:
                    if grant.state == GrantState.ACTIVE:
                        grant.state = GrantState.REVOKING
                        grant.end_reason = "expired"
                        grant.ended_by = SYSTEM_ACTOR
                        audit.record(
                            session,
                            Event.EXPIRED,
                            actor=SYSTEM_ACTOR,
                            request_id=grant.request_id,
                            grant_id=grant.id,
                            expires_at=_iso(grant.expires_at),
                        )
                    outcome = self._attempt_revoke(session, grant)
            self._after(outcome)
        return len(handled)

    # -- early revocation, extension, reminders ---------------------------------------------------

    def revoke_now(self, grant_id: uuid.UUID, *, actor: str, reason: str | None) -> RequestView:
        """Revoke at once through the strategy (a person gave it back, or took it away).

        Waits for the row lock rather than skipping it: whoever clicked is waiting too. If the
        revoke call fails, the grant stays due and the sweeper goes on retrying it.
        """
        with self.sessions.begin() as session:
            grant = session.scalars(
                select(Grant).where(Grant.id == grant_id).with_for_update(of=Grant)
            ).one()
            if grant.state != GrantState.ACTIVE:
                raise NotAllowed(
                    f"This access is {grant.state} already; there is nothing to revoke."
                )
            grant.state = GrantState.REVOKING
            grant.end_reason = "revoked"
            grant.ended_by = actor
            grant.end_note = reason
            audit.record(
                session,
                Event.REVOKE_REQUESTED,
                actor=actor,
                request_id=grant.request_id,
                grant_id=grant.id,
                reason=reason,
            )
            outcome = self._attempt_revoke(session, grant)
        self._after(outcome)
        return outcome.view

    def extend(self, grant_id: uuid.UUID, extension_id: uuid.UUID) -> None:
        """Carry out an approved extension: the strategy is told the new expiry, then it holds."""
        with self.sessions.begin() as session:
            grant = session.scalars(
                select(Grant).where(Grant.id == grant_id).with_for_update(of=Grant)
            ).one()
            extension = session.get_one(AccessRequest, extension_id)
            name, strategy = self._strategy(grant)
            why = self._cannot_extend(grant, extension)
            if why is None:
                assert grant.expires_at is not None and strategy is not None
                new_expiry = grant.expires_at + extension.duration
                try:
                    strategy.grant(self._context(grant, "grant", new_expiry))
                except GrantError as exc:
                    why = f"the grant target refused the new expiry: {exc}"
            if why is not None:
                audit.record(
                    session,
                    Event.EXTEND_FAILED,
                    actor=SYSTEM_ACTOR,
                    request_id=extension.id,
                    grant_id=grant.id,
                    error=why,
                )
            else:
                grant.expires_at = new_expiry
                grant.reminded_at = None
                audit.record(
                    session,
                    Event.EXTENDED,
                    actor=SYSTEM_ACTOR,
                    request_id=grant.request_id,
                    grant_id=grant.id,
                    extension_request_id=str(extension.id),
                    expires_at=_iso(new_expiry),
                )
            session.flush()
            view, extension_view = (
                RequestView.of(grant.request, name),
                RequestView.of(extension, name),
            )
        if why is not None:
            self.notifier.extension_failed(view, extension_view, why)
            return
        assert view.expires_at is not None
        self._wake_for(view.expires_at, view.granted_at)
        self.notifier.grant_extended(view, extension_view)

    def _cannot_extend(self, grant: Grant, extension: AccessRequest) -> str | None:
        if grant.state != GrantState.ACTIVE or grant.expires_at is None:
            return f"the access is {grant.state}, no longer active"
        found = self.registry.find(grant.request.resource_id)
        if found is None:
            return "the resource is no longer in the workflows"
        workflow, resource = found
        limit = workflow.max_duration_for(resource)
        assert grant.granted_at is not None
        total = grant.expires_at + extension.duration - grant.granted_at
        if limit is not None and total > limit:
            return (
                f"it would last {describe_duration(total)} in all, more than the policy's "
                f"maximum of {describe_duration(limit)}"
            )
        return None

    def send_reminders(self) -> int:
        """DM everyone whose access ends within `reminder` (grants of `reminder_min_grant`+)."""
        sent = 0
        while True:
            now = self.clock()
            with self.sessions.begin() as session:
                grant = session.scalars(
                    select(Grant)
                    .where(
                        Grant.state == GrantState.ACTIVE,
                        Grant.reminded_at.is_(None),
                        Grant.expires_at <= now + self.reminder,
                        Grant.expires_at > now,
                        Grant.expires_at - Grant.granted_at >= self.reminder_min_grant,
                    )
                    .limit(1)
                    .with_for_update(of=Grant, skip_locked=True)
                ).first()
                if grant is None:
                    return sent
                grant.reminded_at = now
                audit.record(
                    session,
                    Event.REMINDED,
                    actor=SYSTEM_ACTOR,
                    request_id=grant.request_id,
                    grant_id=grant.id,
                    expires_at=_iso(grant.expires_at),
                )
                name, _ = self._strategy(grant)
                session.flush()
                view = RequestView.of(grant.request, name)
            self.notifier.expiry_reminder(view)
            sent += 1

    def announce_missed(self, *, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Tell requesters about grant changes whose DM never went out (a crash right after the
        commit, or Slack failing), once the change is `older_than` old."""
        cutoff = self.clock() - older_than
        changed_at = case(
            (Grant.state == GrantState.ACTIVE, Grant.granted_at), else_=Grant.ended_at
        )
        announced = 0
        while True:
            with self.sessions.begin() as session:
                grant = session.scalars(
                    select(Grant)
                    .where(
                        Grant.state.in_(ANNOUNCED),
                        Grant.notified_state.is_distinct_from(Grant.state),
                        changed_at <= cutoff,
                    )
                    .limit(1)
                    .with_for_update(of=Grant, skip_locked=True)
                ).first()
                if grant is None:
                    return announced
                name, _ = self._strategy(grant)
                view = RequestView.of(grant.request, name)
                notify = {
                    GrantState.ACTIVE: self.notifier.grant_activated,
                    GrantState.FAILED: self.notifier.grant_failed,
                    GrantState.REVOKED: self.notifier.grant_ended,
                }[GrantState(grant.state)]
                if not notify(view):
                    return announced  # Slack is failing: the next sweep tries again
                grant.notified_state = grant.state
            announced += 1

    def _mark_notified(self, view: RequestView) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(Grant)
                .where(Grant.request_id == view.id, Grant.state == view.grant_state)
                .values(notified_state=view.grant_state)
            )

    def _wake_for(self, expires_at: datetime, granted_at: datetime | None) -> None:
        self.wakeups.wake_at(expires_at)
        if granted_at is not None and expires_at - granted_at >= self.reminder_min_grant:
            self.wakeups.wake_at(expires_at - self.reminder)

    # -- attempts (inside the claiming transaction) ------------------------------------------

    def _strategy(self, grant: Grant) -> tuple[str, GrantStrategy | None]:
        found = self.registry.find(grant.request.resource_id)
        if found is None:
            return grant.request.resource_id, None
        return found[1].name, found[1].grant

    def _context(self, grant: Grant, event: str, expires_at: datetime) -> GrantContext:
        request = grant.request
        name, _ = self._strategy(grant)
        return GrantContext(
            event=event,  # type: ignore[arg-type]
            request_id=request.id,
            grant_id=grant.id,
            workflow=request.workflow,
            resource=request.resource_id,
            resource_name=name,
            user=GrantUser(
                request.requester_slack_id, request.requester_email, request.requester_name
            ),
            expires_at=expires_at,
            approved_by=",".join(a.approver_slack_id for a in request.approvals)
            or request.decided_by,
            justification=request.justification,
        )

    def _attempt_grant(self, session: Session, grant: Grant) -> _Outcome:
        now = self.clock()
        expires_at = now + grant.request.duration
        name, strategy = self._strategy(grant)
        retry = strategy.retry if strategy else Retry(attempts=1)
        try:
            if strategy is None:
                raise GrantError(f"resource {grant.request.resource_id!r} is no longer defined")
            strategy.grant(self._context(grant, "grant", expires_at))
        except GrantError as exc:
            grant.attempts += 1
            grant.last_error = str(exc)[:2000]
            if grant.attempts >= retry.attempts:
                grant.state = GrantState.FAILED
                grant.next_attempt_at = None
                grant.ended_at = now
                audit.record(
                    session,
                    Event.GRANT_FAILED,
                    actor=SYSTEM_ACTOR,
                    request_id=grant.request_id,
                    grant_id=grant.id,
                    attempts=grant.attempts,
                    error=grant.last_error,
                )
                log.warning("grant %s failed for good: %s", grant.id, exc)
                return self._outcome(session, grant, name, self.notifier.grant_failed, None)
            grant.next_attempt_at = now + retry.delay(grant.attempts)
            audit.record(
                session,
                Event.GRANT_ATTEMPT_FAILED,
                actor=SYSTEM_ACTOR,
                request_id=grant.request_id,
                grant_id=grant.id,
                attempt=grant.attempts,
                error=grant.last_error,
                next_attempt_at=_iso(grant.next_attempt_at),
            )
            log.info("grant %s attempt %d failed: %s", grant.id, grant.attempts, exc)
            return self._outcome(session, grant, name, None, grant.next_attempt_at)
        grant.state = GrantState.ACTIVE
        grant.granted_at = now
        grant.expires_at = expires_at
        grant.attempts = 0
        grant.next_attempt_at = None
        grant.last_error = None
        audit.record(
            session,
            Event.GRANTED,
            actor=SYSTEM_ACTOR,
            request_id=grant.request_id,
            grant_id=grant.id,
            expires_at=_iso(expires_at),
        )
        return self._outcome(
            session, grant, name, self.notifier.grant_activated, expires_at, "after_grant"
        )

    def _attempt_revoke(self, session: Session, grant: Grant) -> _Outcome:
        now = self.clock()
        name, strategy = self._strategy(grant)
        retry = strategy.retry if strategy else Retry()
        try:
            if strategy is None:
                raise GrantError(
                    f"resource {grant.request.resource_id!r} is no longer defined: "
                    "revoke this access by hand"
                )
            assert grant.expires_at is not None
            strategy.revoke(self._context(grant, "revoke", grant.expires_at))
        except GrantError as exc:
            grant.attempts += 1
            grant.last_error = str(exc)[:2000]
            grant.next_attempt_at = now + retry.delay(grant.attempts)
            audit.record(
                session,
                Event.REVOKE_ATTEMPT_FAILED,
                actor=SYSTEM_ACTOR,
                request_id=grant.request_id,
                grant_id=grant.id,
                attempt=grant.attempts,
                error=grant.last_error,
                next_attempt_at=_iso(grant.next_attempt_at),
            )
            log.warning("revoke of grant %s attempt %d failed: %s", grant.id, grant.attempts, exc)
            alert = self.notifier.revoke_failing if grant.attempts == retry.attempts else None
            return self._outcome(session, grant, name, alert, grant.next_attempt_at)
        grant.state = GrantState.REVOKED
        grant.ended_at = now
        grant.attempts = 0
        grant.next_attempt_at = None
        grant.last_error = None
        audit.record(
            session,
            Event.REVOKED,
            actor=grant.ended_by or SYSTEM_ACTOR,
            request_id=grant.request_id,
            grant_id=grant.id,
            reason=grant.end_reason,
        )
        return self._outcome(session, grant, name, self.notifier.grant_ended, None, "after_revoke")

    def _outcome(
        self,
        session: Session,
        grant: Grant,
        resource_name: str,
        notify: Callable[[RequestView], bool] | None,
        wake_at: datetime | None,
        hook: AfterHook | None = None,
    ) -> _Outcome:
        session.flush()
        return _Outcome(RequestView.of(grant.request, resource_name), notify, wake_at, hook)

    def _after(self, outcome: _Outcome | None) -> None:
        if outcome is None:
            return
        if outcome.wake_at is not None:
            if outcome.view.grant_state == GrantState.ACTIVE:
                self._wake_for(outcome.wake_at, outcome.view.granted_at)
            else:
                self.wakeups.wake_at(outcome.wake_at)
        if outcome.notify is not None:
            told = outcome.notify(outcome.view)
            if told and outcome.view.grant_state in ANNOUNCED:
                self._mark_notified(outcome.view)
        if outcome.hook is not None:
            self.hooks.run(outcome.hook, outcome.view)


ANNOUNCED = (GrantState.ACTIVE, GrantState.FAILED, GrantState.REVOKED)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
