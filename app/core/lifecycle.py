"""Grants: carry them out, retry them, revoke them at expiry. The grant half of the state machine.

The database is the source of truth and the work queue. A grant that needs work has `due_at`
set; a worker claims it with a lease in a short transaction (`claim_due`), then `attempt`:

1. in the claiming transaction (batched, `_plan`): move an expired grant to
   revoking, extend the lease to cover the call, and read what the strategy needs;
2. the strategy's call, with no transaction or row lock open, under a hard deadline;
3. `_finish`, a short transaction: only while the lease is still ours, record the outcome and
   the messages it causes (the outbox), then clear the lease. Outcomes that arrive together
   share one transaction (`GroupCommit`).

A worker that dies loses its lease when it runs out, and another takes the grant over. Whatever
a strategy does (raises anything, returns garbage text, hangs) is recorded for that grant
alone. A grant that fails for good is revoked before it is called failed: the target may have
applied it even though its answer never came.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, defaultload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app.core import audit, grant_rows, overlap
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.deadline import DeadlineExceeded, call_with_deadline
from app.core.durations import describe_duration
from app.core.errors import NotAllowed
from app.core.group_commit import GroupCommit
from app.core.hooks import AfterHook, AfterHooks
from app.core.models import AccessRequest, Grant, GrantState
from app.core.ports import CallMetrics, Clock, NoMetrics, Notifier, Wakeups
from app.core.text import clean
from app.core.views import RequestView
from app.db.sets import none_of, one_of
from app.grants.base import GrantContext, GrantError, GrantStrategy, GrantUser, Retry
from app.workflows.loader import Registry

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = 10.0  # seconds a strategy call may take, unless the strategy says otherwise
DEADLINE_GRACE = 0.25  # a strategy that bounds its own calls reports its own timeout first
LEASE_MARGIN = timedelta(seconds=30)  # a lease outlives the call it covers by this much
CLAIM_LEASE = timedelta(seconds=60)  # set by the claim, then `_plan` sets the call's own
ANSWER_LIMIT = 200  # characters of a target's answer kept in the audit log
ERROR_LIMIT = 2000  # characters of a strategy's error kept in grants.last_error and the audit
# A lone outcome waits up to this long for FINISH_MIN_BATCH to share its transaction, while
# other calls are in progress (a backlog); with none in progress it is recorded at once.
FINISH_GATHER = 0.01
FINISH_MIN_BATCH = 8


class _Failure(str):
    """Why a call failed, as people may read it; the target's own answer rides along for the
    audit log alone (it may hold anything the target chose to echo)."""

    answer: str | None

    def __new__(cls, message: str, *, answer: str | None = None) -> _Failure:
        failure = super().__new__(cls, message)
        failure.answer = clean(answer, ANSWER_LIMIT) if answer else None
        return failure


def _answer(error: str | None) -> dict[str, str]:
    """The target's answer to a failed call, as audit detail (and nowhere else)."""
    if isinstance(error, _Failure) and error.answer:
        return {"target_answer": error.answer}
    return {}


@dataclass(frozen=True)
class _Plan:
    """One strategy call to make, prepared when the grant was claimed."""

    grant_id: uuid.UUID
    operation: str  # grant, revoke, extend
    strategy: GrantStrategy | None
    context: GrantContext
    deadline: float
    extension_id: uuid.UUID | None = None
    started_at: datetime | None = None  # when the grant's time began (a grant's first call)


@dataclass(frozen=True)
class Claim:
    grant_id: uuid.UUID
    resource_id: str
    plan: _Plan | None  # None: nothing to call (the grant was released, or needs no work now)


# What a call came to: its plan, why it failed (None: it succeeded), and what it returned.
_Outcome = tuple[_Plan, str | None, object]


@dataclass
class _After:
    """What a committed change sets going: hooks to run, times to wake at."""

    hooks: list[tuple[AfterHook, RequestView]] = field(default_factory=list)
    wake_at: list[datetime] = field(default_factory=list)


def strategy_deadline(strategy: GrantStrategy | None) -> float:
    deadline = getattr(strategy, "deadline", None)
    return (
        float(deadline) if isinstance(deadline, int | float) and deadline > 0 else DEFAULT_DEADLINE
    )


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
        owner: str,
        reminder: timedelta = timedelta(minutes=10),
        reminder_min_grant: timedelta = timedelta(minutes=30),
        lease_margin: timedelta = LEASE_MARGIN,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.lease_margin = lease_margin
        self.metrics: CallMetrics = metrics or NoMetrics()
        self.sessions = sessions
        self.registry = registry
        self.notifier = notifier
        self.clock = clock
        self.wakeups = wakeups
        self.hooks = hooks
        self.owner = owner  # who holds the leases this process takes
        self.reminder = reminder
        self.reminder_min_grant = reminder_min_grant
        # Told whenever a grant becomes due now (a new approval, a give-back): the workers.
        self.on_due: Callable[[], None] = lambda: None
        # Outcomes that arrive together are recorded in one transaction; while calls are
        # still in progress, a lone outcome waits a few milliseconds for others to share it.
        self._calling = 0  # strategy calls in progress (their outcomes are on their way)
        self._calling_lock = threading.Lock()
        self._finishing: GroupCommit[_Outcome, _After | None] = GroupCommit(
            run_batch=self._finish_many,
            run_one=self._finish,
            gather=FINISH_GATHER,
            min_batch=FINISH_MIN_BATCH,
            more_coming=lambda: self._calling > 0,
        )

    # -- the work queue --------------------------------------------------------------------

    def claim_due(self, limit: int, *, skip_resources: Collection[str] = ()) -> list[Claim]:
        """Lease up to `limit` due grants, earliest due first, none of `skip_resources`, and
        prepare each one's call, all in one short transaction (batched: no per-grant round trip
        of its own before its call)."""
        if limit <= 0:
            return []
        now = self.clock()
        # One statement takes the grants and loads them (with their requests): the lease is
        # written with the rest of each grant's plan when this transaction commits, and the
        # row locks keep other workers off them until then.
        due = (
            select(Grant)
            .where(
                Grant.due_at <= now,
                or_(Grant.lease_until.is_(None), Grant.lease_until <= now),
            )
            .order_by(Grant.due_at)
            # The limit is written into the statement (one prepared statement per batch size,
            # planned once each) rather than sent as a parameter: the grants' requests and
            # approvals are joined outside this (locked, limited) subquery, and planned for an
            # unknown `LIMIT $1`, which PostgreSQL guesses at a tenth of the due grants, that
            # join read all of `access_requests` by hash (52 ms a claim with 200,000 past
            # requests); for a known small limit it looks each one up by key.
            .limit(bindparam("claim_limit", limit, literal_execute=True))
            .with_for_update(of=Grant, skip_locked=True)
        )
        if skip_resources:
            due = due.join(AccessRequest, AccessRequest.id == Grant.request_id).where(
                none_of(AccessRequest.resource_id, skip_resources)
            )
        with self.sessions.begin() as session:
            grants = _load(session, due)  # earliest due first
            if not grants:
                return []
            # Overlap decisions lock each person: all at once, in one order, so two batches
            # never wait on each other; and their grants are read once for the batch.
            overlap.prepare_batch(session, grants)
            for grant in grants:  # after the reads above: each grant is written once, at commit
                grant.lease_owner, grant.lease_until = self.owner, now + CLAIM_LEASE
            claims = [
                Claim(grant.id, grant.request.resource_id, self._plan(session, grant, now))
                for grant in grants
            ]
            grant_rows.write(session, grants)  # the batch's grants: one UPDATE
        return claims

    def release(self, grant_ids: Collection[uuid.UUID]) -> None:
        """Hand claimed grants back (their target is full): due again at once."""
        with self.sessions.begin() as session:
            session.execute(
                update(Grant)
                .where(one_of(Grant.id, grant_ids), Grant.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def next_due(self, *, skip_resources: Collection[str] = ()) -> datetime | None:
        """When the next grant falls due (or its lease runs out), for the workers' timer: the
        earliest due grant nobody leases (the first of `ix_grants_due_at` that has no lease)
        and the earliest lease to run out (`ix_grants_lease_until`, the few in progress), in
        one statement, however many grants have work ahead."""
        unleased = select(func.min(Grant.due_at)).where(
            Grant.due_at.is_not(None), Grant.lease_until.is_(None)
        )
        leased = select(func.min(func.greatest(Grant.due_at, Grant.lease_until))).where(
            Grant.due_at.is_not(None), Grant.lease_until.is_not(None)
        )
        if skip_resources:
            skipped = list(skip_resources)
            unleased, leased = (
                query.join(AccessRequest, AccessRequest.id == Grant.request_id).where(
                    none_of(AccessRequest.resource_id, skipped)
                )
                for query in (unleased, leased)
            )
        with self.sessions.begin() as session:
            # least() of the two, ignoring either that is NULL (nothing of that kind)
            return session.scalar(
                select(func.least(unleased.scalar_subquery(), leased.scalar_subquery()))
            )

    def attempt(self, claim: Claim, *, call_done: Callable[[], None] = lambda: None) -> None:
        """Do the work a claimed grant is due for. `call_done` runs once the strategy call has
        really ended (which may be after its deadline), or at once when no call is made."""
        plan = claim.plan
        if plan is None:
            call_done()
            return
        with self._calling_lock:
            self._calling += 1
        try:
            error, result = self._call(plan, call_done)
        finally:
            with self._calling_lock:
                self._calling -= 1
        after = self._finishing.submit((plan, error, result))
        if after is not None:
            self._run_after(after)

    def _call(self, plan: _Plan, call_done: Callable[[], None]) -> tuple[str | None, object]:
        """The strategy's call with no transaction open: (None, what it returned) when it
        succeeded, else (why not, None)."""
        strategy = plan.strategy
        if strategy is None:
            call_done()
            message = f"resource {plan.context.resource!r} is no longer defined"
            if plan.operation == "revoke":
                message += ": revoke this access by hand"
            return message, None
        method = strategy.revoke if plan.operation == "revoke" else strategy.grant
        started, outcome = time.perf_counter(), "error"
        try:
            result = call_with_deadline(
                lambda: method(plan.context),
                plan.deadline + DEADLINE_GRACE,
                name=f"{plan.operation}-{plan.grant_id}",
                done=call_done,
            )
            outcome = "ok"
        except GrantError as exc:
            failure = _Failure(
                clean(exc, ERROR_LIMIT) or "the grant target refused (no reason given)",
                answer=exc.answer,
            )
            return failure, None
        except DeadlineExceeded as exc:
            outcome = "timeout"
            return f"{strategy.describe()} {exc}", None
        except Exception as exc:  # a strategy bug: recorded for this grant alone
            log.exception("%s of grant %s raised", plan.operation, plan.grant_id)
            return clean(f"{exc.__class__.__name__}: {exc}", ERROR_LIMIT), None
        finally:
            kind = type(strategy).__name__  # Webhook, PostgresRole, Python: bounded
            self.metrics.strategy_call(kind, plan.operation, outcome, time.perf_counter() - started)
        return None, result

    # -- early revocation, extension, reminders ---------------------------------------------

    def revoke_now(self, grant_id: uuid.UUID, *, actor: str, reason: str | None) -> RequestView:
        """Revoke as soon as a worker is free (a person gave it back, or took it away)."""
        with self.sessions.begin() as session:
            grant = session.scalars(
                select(Grant).where(Grant.id == grant_id).with_for_update(of=Grant)
            ).one()
            if grant.state != GrantState.ACTIVE:
                raise NotAllowed(
                    f"This access is {grant.state} already; there is nothing to revoke."
                )
            self._start_revoking(session, grant, "revoked", actor)
            grant.end_note = reason
            audit.record(
                session,
                Event.REVOKE_REQUESTED,
                actor=actor,
                request_id=grant.request_id,
                grant_id=grant.id,
                reason=reason,
            )
            view = self._view(session, grant)
        self.on_due()
        return view

    def queue_extension(
        self, session: Session, grant_id: uuid.UUID, extension_id: uuid.UUID
    ) -> None:
        """In the approving transaction: a worker carries the extension out under the lease,
        so it never races the grant's own revocation."""
        session.execute(
            update(Grant)
            .where(Grant.id == grant_id)
            .values(extension_request_id=extension_id, due_at=self.clock())
            .execution_options(synchronize_session=False)
        )

    def send_reminders(self, limit: int = 500) -> int:
        """DM everyone whose access ends within `reminder` (grants of `reminder_min_grant`+)."""
        now = self.clock()
        with self.sessions.begin() as session:
            grants = session.scalars(
                select(Grant)
                .where(
                    Grant.state == GrantState.ACTIVE,
                    Grant.reminded_at.is_(None),
                    Grant.expires_at <= now + self.reminder,
                    Grant.expires_at > now,
                    Grant.expires_at - Grant.granted_at >= self.reminder_min_grant,
                )
                .limit(limit)
                .with_for_update(of=Grant, skip_locked=True)
            ).all()
            for grant in grants:
                grant.reminded_at = now
                audit.record(
                    session,
                    Event.REMINDED,
                    actor=SYSTEM_ACTOR,
                    request_id=grant.request_id,
                    grant_id=grant.id,
                    expires_at=_iso(grant.expires_at),
                )
                self.notifier.expiry_reminder(session, self._view(session, grant))
        return len(grants)

    def next_reminder(self) -> datetime | None:
        """When the next reminder falls due, for the scheduler's timer."""
        with self.sessions.begin() as session:
            expires = session.scalar(
                select(func.min(Grant.expires_at)).where(
                    Grant.state == GrantState.ACTIVE,
                    Grant.reminded_at.is_(None),
                    Grant.expires_at - Grant.granted_at >= self.reminder_min_grant,
                )
            )
        return expires - self.reminder if expires else None

    def overdue(self) -> int:
        """Grants past their expiry that are not revoked yet."""
        with self.sessions.begin() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Grant)
                    .where(
                        Grant.state.in_([GrantState.ACTIVE, GrantState.REVOKING]),
                        Grant.expires_at < self.clock(),
                    )
                )
                or 0
            )

    # -- one attempt: prepare, call, finish --------------------------------------------------

    def _plan(self, session: Session, grant: Grant, now: datetime) -> _Plan | None:
        """In the claiming transaction: what this grant's call is to be, or None (released)."""
        name, strategy = self._strategy(grant)
        state = GrantState(grant.state)
        if state == GrantState.ACTIVE:
            assert grant.expires_at is not None
            if grant.expires_at <= now:
                self._start_revoking(session, grant, "expired", SYSTEM_ACTOR)
                audit.record(
                    session,
                    Event.EXPIRED,
                    actor=SYSTEM_ACTOR,
                    request_id=grant.request_id,
                    grant_id=grant.id,
                    expires_at=_iso(grant.expires_at),
                )
                operation = "revoke"
            elif grant.extension_request_id is not None:
                operation = "extend"
            else:  # extended meanwhile, or a stale due time: nothing to do yet
                grant.due_at = grant.expires_at
                self._release(grant)
                return None
        elif state == GrantState.GRANTING:
            operation = "grant"
        elif state == GrantState.REVOKING:
            operation = "revoke"
        else:
            grant.due_at = None
            self._release(grant)
            return None
        decision = overlap.decide(session, grant, operation, now)
        if not decision.proceed:  # a covering grant's call is in flight: look again soon
            grant.due_at = decision.retry_at
            self._release(grant)
            return None
        if decision.kept:  # no revoke is sent: the access stays (the audit says why)
            strategy = overlap.KeepAccess(f"access kept ({decision.kept})")
        deadline = strategy_deadline(strategy)
        grant.lease_until = now + timedelta(seconds=deadline) + self.lease_margin
        extension_id = grant.extension_request_id if operation == "extend" else None
        if operation == "grant":
            expires_at = now + grant.request.duration
            if grant.request.not_after is not None:  # OnCall(end_with_shift=True)
                expires_at = min(expires_at, grant.request.not_after)
        elif operation == "extend":
            extension = session.get_one(AccessRequest, extension_id)
            assert grant.expires_at is not None
            expires_at = grant.expires_at + extension.duration
            if extension.not_after is not None:  # OnCall(end_with_shift=True)
                expires_at = max(grant.expires_at, min(expires_at, extension.not_after))
        else:
            assert grant.expires_at is not None
            expires_at = grant.expires_at
        context = self._context(grant, name, operation, expires_at, extension_id)
        return _Plan(grant.id, operation, strategy, context, deadline, extension_id, now)

    def _finish(self, outcome: _Outcome) -> _After | None:
        return self._finish_many([outcome])[0]

    def _finish_many(self, outcomes: Sequence[_Outcome]) -> list[_After | None]:
        """Record the outcomes of calls in one short transaction (group commit)."""
        with self.sessions.begin() as session:
            ids = sorted({plan.grant_id for plan, _, _ in outcomes})  # one lock order for all
            grants = {
                grant.id: grant
                for grant in _load(
                    session,
                    select(Grant)
                    .where(one_of(Grant.id, ids), Grant.lease_owner == self.owner)
                    .order_by(Grant.id)
                    .with_for_update(of=Grant),
                )
            }
            granted = {plan.grant_id for plan, _, _ in outcomes if plan.operation == "grant"}
            overlap.lock_people(  # after_grant decides under them
                session,
                [g.request.requester_slack_id for g in grants.values() if g.id in granted],
            )
            finished = [
                self._finish_leased(session, grants.get(plan.grant_id), plan, error, result)
                for plan, error, result in outcomes
            ]
            grant_rows.write(session, grants.values())  # the batch's grants: one UPDATE
            return finished

    def _finish_leased(
        self,
        session: Session,
        grant: Grant | None,
        plan: _Plan,
        error: str | None,
        result: object = None,
    ) -> _After | None:
        if grant is None:
            log.warning(
                "lost the lease on grant %s during its %s call; its new owner redoes it",
                plan.grant_id,
                plan.operation,
            )
            return None
        after = _After()
        if plan.operation == "grant":
            if error is None:
                overlap.after_grant(session, grant, result)
            self._finish_grant(session, grant, plan, error, after)
        elif plan.operation == "extend":
            self._finish_extend(session, grant, plan, error, after)
        else:
            self._finish_revoke(session, grant, error, after)
        if GrantState(grant.state) in (GrantState.REVOKED, GrantState.FAILED):
            self._fail_pending_extension(session, grant, "the access has ended")
        self._release(grant)
        return after

    def _finish_grant(
        self, session: Session, grant: Grant, plan: _Plan, error: str | None, after: _After
    ) -> None:
        if error is None:
            grant.state = GrantState.ACTIVE
            grant.expires_at = plan.context.expires_at  # what the target was told
            grant.granted_at = plan.started_at
            grant.attempts = 0
            grant.next_attempt_at = None
            grant.last_error = None
            grant.due_at = grant.expires_at
            audit.record(
                session,
                Event.GRANTED,
                actor=SYSTEM_ACTOR,
                request_id=grant.request_id,
                grant_id=grant.id,
                expires_at=_iso(grant.expires_at),
            )
            view = self._view(session, grant)
            self.notifier.grant_activated(session, view)
            after.hooks.append(("after_grant", view))
            after.wake_at.append(self._reminder_time(grant))
            return
        retry = _retry(plan.strategy)
        grant.attempts += 1
        grant.last_error = error
        if grant.attempts >= retry.attempts:
            # The target may have applied it even though we saw a failure (a lost answer, a
            # timeout): revoke before calling it failed.
            audit.record(
                session,
                Event.GRANT_FAILED,
                actor=SYSTEM_ACTOR,
                request_id=grant.request_id,
                grant_id=grant.id,
                attempts=grant.attempts,
                error=error,
                compensating_revoke=True,
                **_answer(error),
            )
            log.warning("grant %s failed for good; revoking it in case it applied", grant.id)
            grant.expires_at = grant.expires_at or plan.context.expires_at
            self._start_revoking(session, grant, "grant_failed", SYSTEM_ACTOR)
            grant.end_note = error
            return
        self._schedule_retry(session, grant, Event.GRANT_ATTEMPT_FAILED, retry, _answer(error))
        log.info("grant %s attempt %d failed: %s", grant.id, grant.attempts, error)
        self.notifier.grant_progress(session, self._view(session, grant))

    def _finish_revoke(
        self, session: Session, grant: Grant, error: str | None, after: _After
    ) -> None:
        now = self.clock()
        _, strategy = self._strategy(grant)
        retry = _retry(strategy)
        if error is None:
            compensated = grant.end_reason == "grant_failed"
            grant.ended_at = now
            grant.next_attempt_at = None
            grant.due_at = None
            audit.record(
                session,
                Event.REVOKED,
                actor=grant.ended_by or SYSTEM_ACTOR,
                request_id=grant.request_id,
                grant_id=grant.id,
                reason=grant.end_reason,
            )
            if compensated:
                grant.state = GrantState.FAILED
                grant.attempts = retry.attempts
                grant.last_error = grant.end_note
                self.notifier.grant_failed(session, self._view(session, grant))
                return
            grant.state = GrantState.REVOKED
            grant.attempts = 0
            grant.last_error = None
            view = self._view(session, grant)
            self.notifier.grant_ended(session, view)
            after.hooks.append(("after_revoke", view))
            return
        grant.attempts += 1
        grant.last_error = error
        self._schedule_retry(session, grant, Event.REVOKE_ATTEMPT_FAILED, retry, _answer(error))
        log.warning("revoke of grant %s attempt %d failed: %s", grant.id, grant.attempts, error)
        view = self._view(session, grant)
        if _alert_now(grant.attempts, retry.attempts):
            overdue = now - grant.expires_at if grant.expires_at else timedelta(0)
            self.notifier.revoke_failing(session, view, max(overdue, timedelta(0)))
        else:
            self.notifier.grant_progress(session, view)

    def _finish_extend(
        self, session: Session, grant: Grant, plan: _Plan, error: str | None, after: _After
    ) -> None:
        assert plan.extension_id is not None
        if grant.extension_request_id != plan.extension_id:
            # Superseded meanwhile (the access was revoked or expired, which failed the
            # extension): the grant's own state decides what is next.
            return
        if error is not None:
            self._fail_pending_extension(
                session, grant, f"the grant target refused the new expiry: {error}"
            )
            grant.due_at = grant.expires_at
            return
        why = self._cannot_extend(session, grant, plan)
        if why is not None:  # the policy changed during the call: it still holds (told target)
            log.warning("extension of grant %s applied although %s", grant.id, why)
        grant.expires_at = plan.context.expires_at
        grant.reminded_at = None
        grant.extension_request_id = None
        grant.due_at = grant.expires_at
        audit.record(
            session,
            Event.EXTENDED,
            actor=SYSTEM_ACTOR,
            request_id=grant.request_id,
            grant_id=grant.id,
            extension_request_id=str(plan.extension_id),
            expires_at=_iso(grant.expires_at),
        )
        extension = session.get_one(AccessRequest, plan.extension_id)
        name, _ = self._strategy(grant)
        self.notifier.grant_extended(
            session, self._view(session, grant), RequestView.of(extension, name)
        )
        after.wake_at.append(self._reminder_time(grant))

    def _schedule_retry(
        self,
        session: Session,
        grant: Grant,
        event: Event,
        retry: Retry,
        answer: dict[str, str] | None = None,
    ) -> None:
        """After a failed attempt (counted in `grant.attempts`, why in `last_error`)."""
        grant.next_attempt_at = grant.due_at = self.clock() + retry.delay(grant.attempts)
        audit.record(
            session,
            event,
            actor=SYSTEM_ACTOR,
            request_id=grant.request_id,
            grant_id=grant.id,
            attempt=grant.attempts,
            error=grant.last_error,
            next_attempt_at=_iso(grant.next_attempt_at),
            **(answer or {}),
        )

    def _cannot_extend(self, session: Session, grant: Grant, plan: _Plan) -> str | None:
        found = self.registry.find(grant.request.resource_id)
        if found is None:
            return "the resource is no longer in the workflows"
        workflow, resource = found
        limit = workflow.max_duration_for(resource)
        assert grant.granted_at is not None
        total = plan.context.expires_at - grant.granted_at
        if limit is not None and total > limit:
            return (
                f"it would last {describe_duration(total)} in all, more than the policy's "
                f"maximum of {describe_duration(limit)}"
            )
        return None

    def _fail_pending_extension(self, session: Session, grant: Grant, why: str) -> None:
        extension_id = grant.extension_request_id
        if extension_id is None:
            return
        grant.extension_request_id = None
        extension = session.get_one(AccessRequest, extension_id)
        audit.record(
            session,
            Event.EXTEND_FAILED,
            actor=SYSTEM_ACTOR,
            request_id=extension.id,
            grant_id=grant.id,
            error=why,
        )
        name, _ = self._strategy(grant)
        self.notifier.extension_failed(
            session, self._view(session, grant), RequestView.of(extension, name), why
        )

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _release(grant: Grant) -> None:
        grant.lease_owner = None
        grant.lease_until = None

    def _start_revoking(self, session: Session, grant: Grant, reason: str, actor: str) -> None:
        grant.state = GrantState.REVOKING
        grant.end_reason = reason
        grant.ended_by = actor
        grant.attempts = 0  # revoke attempts from here on
        grant.due_at = self.clock()
        self._fail_pending_extension(session, grant, ENDED_BEFORE_EXTENSION.get(reason, reason))

    def _reminder_time(self, grant: Grant) -> datetime:
        assert grant.expires_at is not None
        return grant.expires_at - self.reminder

    def _strategy(self, grant: Grant) -> tuple[str, GrantStrategy | None]:
        found = self.registry.find(grant.request.resource_id)
        if found is None:
            return grant.request.resource_id, None
        return found[1].name, found[1].grant

    def _view(self, session: Session, grant: Grant) -> RequestView:
        name, _ = self._strategy(grant)
        return RequestView.of(grant.request, name)

    def _context(
        self,
        grant: Grant,
        name: str,
        operation: str,
        expires_at: datetime,
        extension_id: uuid.UUID | None,
    ) -> GrantContext:
        request = grant.request
        # Stable across retries of one event, different for each event: receivers de-duplicate.
        scope = f"extend:{extension_id}" if operation == "extend" else operation
        return GrantContext(
            event="revoke" if operation == "revoke" else "grant",
            request_id=request.id,
            grant_id=grant.id,
            event_id=str(uuid.uuid5(grant.id, scope)),
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
            undo=dict(grant.undo or {}) if operation == "revoke" else {},
        )

    def _run_after(self, after: _After) -> None:
        for when in after.wake_at:
            self.wakeups.wake_at(when)
        for hook, view in after.hooks:
            self.hooks.run(hook, view)


ENDED_BEFORE_EXTENSION = {
    "expired": "the access expired before the extension was applied",
    "revoked": "the access was revoked",
    "grant_failed": "the grant failed",
}


# The requests' approvals come in the same statement as their grants (joined: a claim waits
# for each round trip to the database, and two processes on a busy machine waited 2-3 ms for
# each), not through the relationship's own "selectin" (an `IN` list as long as the batch: a
# statement PostgreSQL plans anew for every batch size, and one more round trip). With a
# LIMIT, SQLAlchemy takes the grants (and their row locks) in a subquery and joins outside it
# (see `claim_due` for what that asks of the LIMIT).
_WITH_APPROVALS = defaultload(Grant.request).joinedload(AccessRequest.approvals)


def _load(session: Session, statement: Select[tuple[Grant]]) -> list[Grant]:
    """A batch of grants, each with its request and the request's approvals, in one statement;
    each request is told its grant too, which it would otherwise load with one query per
    grant."""
    loaded = list(session.scalars(statement.options(_WITH_APPROVALS)).unique())
    for grant in loaded:
        set_committed_value(grant.request, "grant", grant)
    return loaded


def _retry(strategy: GrantStrategy | None) -> Retry:
    retry = getattr(strategy, "retry", None)
    return retry if isinstance(retry, Retry) else Retry(attempts=1)


def _alert_now(attempts: int, threshold: int) -> bool:
    """Alert at `threshold` failures, then at 2x, 4x, 8x...: growing intervals."""
    if attempts < threshold or threshold <= 0:
        return False
    ratio, remainder = divmod(attempts, threshold)
    return remainder == 0 and ratio & (ratio - 1) == 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
