"""Grants that overlap, and access that was there before: decided once, for every strategy.

Two grants *cover the same target* when they belong to the same person and either both
recorded what undoes them and that is the same (the same login, principal and permission set,
group), or, when one has not recorded it yet, they are for the same resource.

- Revoke: access held before the grant is never taken away (`held_before`), and when a grant
  expires while another active grant of the same person covers the same target no revoke is
  sent: the last one to expire revokes. (A grant someone revokes early is revoked as asked.)
  While a covering grant's grant call is in flight the revoke waits for its outcome.
- Grant: while a covering grant's revoke is in flight (or was asked for by someone) the grant
  waits, so the two calls cannot cross at the target (a revoke landing after the new grant
  would leave it without access).
- After a grant: its undo data is stored, and `held_before` is the strategy's `already_had`,
  unless one of our own grants is what made the access exist (then it inherits theirs).

Every decision runs in the caller's short transaction, serialised per person by a transaction
advisory lock, so two workers deciding for two grants of one person see each other's outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, Text, bindparam, select, text
from sqlalchemy.orm import Session

from app.core import audit
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.models import AccessRequest, Grant, GrantState
from app.db.sets import none_of, one_of
from app.grants.base import GrantContext, Granted

WAIT = timedelta(seconds=1)  # how soon to look again when a covering grant's call is in flight
HELD_BEFORE = "held_before"
# Ends after which access another grant still covers stays: the grant ran out, or it failed
# (its compensating revoke must not take what the other grant gave).
ENDS_THAT_KEEP_COVERED_ACCESS = ("expired", "grant_failed")
ANOTHER_GRANT = "another_grant"


@dataclass(frozen=True)
class Decision:
    """What to do with a due call: go ahead, wait until `retry_at`, or keep the access."""

    proceed: bool = True
    retry_at: datetime | None = None
    kept: str | None = None  # held_before, another_grant: no revoke is sent


GO = Decision()


class KeepAccess:
    """The strategy used for a revoke that must send nothing: it succeeds without a call."""

    def __init__(self, describe: str) -> None:
        self._describe = describe

    def grant(self, ctx: GrantContext) -> None:
        raise AssertionError("KeepAccess only stands in for revokes")

    def revoke(self, ctx: GrantContext) -> None:
        return None

    def describe(self) -> str:
        return self._describe


def same_target(a: Grant, b: Grant) -> bool:
    """Whether `a` and `b` give the same access (their requests are loaded)."""
    if a.request.requester_slack_id != b.request.requester_slack_id:
        return False
    if a.undo and b.undo:
        return a.undo == b.undo
    return a.request.resource_id == b.request.resource_id


def lock_person(session: Session, slack_id: str) -> None:
    """Serialise overlap decisions for one person until the transaction ends."""
    lock_people(session, [slack_id])


def lock_people(session: Session, slack_ids: Iterable[str]) -> None:
    """Take the locks of several people in one statement and one order (a batch of grants:
    two transactions that lock people one by one in different orders could wait on each
    other). A person already locked in this transaction is not asked for again."""
    held = _batch(session).locked
    wanted = sorted(set(slack_ids) - held)
    if not wanted:
        return
    session.execute(_LOCK_PEOPLE, {"people": wanted})
    held.update(wanted)


# Built once (a statement built per call cost more than running it): the people's locks in
# the order of their ids.
_LOCK_PEOPLE = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('accessbot:' || person, 0))"
    " FROM (SELECT person FROM unnest(CAST(:people AS text[])) AS person ORDER BY person) AS p"
).bindparams(bindparam("people", type_=ARRAY(Text)))


def prepare_batch(session: Session, grants: Iterable[Grant]) -> None:
    """Before deciding for a batch of grants in one transaction: lock their people, and load
    every grant those people hold that could cover another, in two statements in all."""
    given = list(grants)
    people = sorted({grant.request.requester_slack_id for grant in given})
    if not people:
        return
    lock_people(session, people)
    batch = _batch(session)
    theirs = select(AccessRequest.id).where(one_of(AccessRequest.requester_slack_id, people))
    others = session.scalars(  # those not in hand already (mostly none: a person has one)
        select(Grant).where(
            Grant.request_id.in_(theirs.scalar_subquery()),
            Grant.state.in_(_MAY_COVER),
            none_of(Grant.id, [grant.id for grant in given]),
        )
    ).all()
    for person in people:
        batch.grants[person] = []
    for grant in [*(g for g in given if GrantState(g.state) in _MAY_COVER), *others]:
        batch.grants[grant.request.requester_slack_id].append(grant)


def covering(session: Session, grant: Grant, states: list[GrantState]) -> list[Grant]:
    """The person's other grants in `states` that cover the same target as `grant`."""
    person = grant.request.requester_slack_id
    known = _batch(session).grants.get(person)
    if known is not None and set(states) <= set(_MAY_COVER):
        others = [o for o in known if o.id != grant.id and GrantState(o.state) in states]
        # As the query below orders them: latest expiry first, none last.
        others.sort(key=lambda o: o.expires_at.timestamp() if o.expires_at else float("-inf"))
        others.reverse()
    else:
        # From the person's requests (indexed by requester) to their grants (unique
        # request_id): a few rows read, however many grants others hold.
        theirs = select(AccessRequest.id).where(AccessRequest.requester_slack_id == person)
        others = list(
            session.scalars(
                select(Grant)
                .where(
                    Grant.request_id.in_(theirs.scalar_subquery()),
                    Grant.id != grant.id,
                    Grant.state.in_(states),
                )
                .order_by(Grant.expires_at.desc().nulls_last())
            ).all()
        )
    return [other for other in others if same_target(grant, other)]


@dataclass
class _Batch:
    """What this transaction already knows: people locked, their grants loaded."""

    transaction: object
    locked: set[str] = field(default_factory=set)
    grants: dict[str, list[Grant]] = field(default_factory=dict)


_MAY_COVER = [GrantState.ACTIVE, GrantState.GRANTING, GrantState.REVOKING]
_BATCH = "accessbot.overlap.batch"


def _batch(session: Session) -> _Batch:
    transaction = session.get_transaction()
    batch = session.info.get(_BATCH)
    if batch is None or batch.transaction is not transaction:
        batch = session.info[_BATCH] = _Batch(transaction)
    return batch


def decide(session: Session, grant: Grant, operation: str, now: datetime) -> Decision:
    """The one call the lifecycle makes before a grant or revoke call."""
    if operation == "revoke":
        return before_revoke(session, grant, now)
    if operation == "grant":
        return before_grant(session, grant, now)
    return GO


def before_revoke(session: Session, grant: Grant, now: datetime) -> Decision:
    """In the transaction that prepares a revoke: send it, wait, or keep the access."""
    lock_person(session, grant.request.requester_slack_id)
    if grant.held_before:
        return _keep(session, grant, HELD_BEFORE)
    # Only a grant still running covers: several that expired together each revoke (the
    # strategy's revoke is idempotent), so none waits on another's turn. A grant someone ends
    # early (given back, revoked by an approver or an admin) is revoked as asked.
    others = covering(session, grant, [GrantState.ACTIVE, GrantState.GRANTING])
    active = [
        other
        for other in others
        if other.state == GrantState.ACTIVE
        and other.expires_at is not None
        and other.expires_at > now
    ]
    if active and grant.end_reason in ENDS_THAT_KEEP_COVERED_ACCESS:
        return _keep(session, grant, ANOTHER_GRANT, covered_by=str(active[0].id))
    in_flight = [
        other
        for other in others
        if other.state == GrantState.GRANTING
        and other.lease_until is not None
        and other.lease_until > now
    ]
    if in_flight:
        return Decision(proceed=False, retry_at=now + WAIT)
    if grant.kept is not None:  # kept at an earlier attempt whose outcome was lost
        grant.kept = None
    return GO


def before_grant(session: Session, grant: Grant, now: datetime) -> Decision:
    """In the transaction that prepares a grant: wait while a covering revoke is pending."""
    lock_person(session, grant.request.requester_slack_id)
    for other in covering(session, grant, [GrantState.REVOKING]):
        in_flight = other.lease_until is not None and other.lease_until > now
        # An expiry's revoke waiting for its next attempt need not hold the grant up: once this
        # grant is active, that attempt finds it covering the access and sends nothing.
        if in_flight or other.end_reason not in ENDS_THAT_KEEP_COVERED_ACCESS:
            return Decision(proceed=False, retry_at=now + WAIT)
    return GO


def after_grant(session: Session, grant: Grant, result: object) -> None:
    """In the transaction that records a successful grant: what undoes it, and whether the
    access was there before accessbot gave it."""
    granted = result if isinstance(result, Granted) else None
    grant.undo = _strings(granted.undo) if granted is not None else None
    lock_person(session, grant.request.requester_slack_id)
    if granted is None or not granted.already_had:
        grant.held_before = False
        return
    ours = covering(session, grant, [GrantState.ACTIVE, GrantState.REVOKING])
    grant.held_before = any(other.held_before for other in ours) if ours else True


def _keep(session: Session, grant: Grant, why: str, **detail: Any) -> Decision:
    grant.kept = why
    audit.record(
        session,
        Event.REVOKE_SKIPPED,
        actor=SYSTEM_ACTOR,
        request_id=grant.request_id,
        grant_id=grant.id,
        reason=why,
        **detail,
    )
    return Decision(kept=why)


def _strings(undo: Any) -> dict[str, str]:
    if not isinstance(undo, dict):
        try:
            undo = dict(undo)
        except (TypeError, ValueError):
            return {}
    return {str(key): str(value) for key, value in undo.items()}
