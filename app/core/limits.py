"""Per-requester limits: how many requests one person may have waiting, and file per hour.

One person must not flood the approvers' channel, their DMs and PagerDuty, nor bury other
people's requests under their own in App Home."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.models import AccessRequest, RequestState

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RequesterLimits:
    max_open: int = 5  # requests waiting for a decision at once
    per_hour: int = 20  # requests filed in the last hour, whatever became of them


def lock_requester(session: Session, requester_id: str) -> None:
    """Serialise this requester's submissions until the transaction ends."""
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext("submit:" + requester_id))))


def limit_problem(
    session: Session, requester_id: str, limits: RequesterLimits, now: datetime
) -> str | None:
    """Why `requester_id` may not file another request now, or None."""
    # Both counts in one statement (one round trip: this runs on Slack's ack path).
    waiting, recent = session.execute(
        select(
            func.count().filter(AccessRequest.state == RequestState.PENDING),
            func.count().filter(AccessRequest.created_at > now - RATE_WINDOW),
        ).where(AccessRequest.requester_slack_id == requester_id)
    ).one()
    if (waiting or 0) >= limits.max_open:
        return (
            f"You have {waiting} requests waiting for a decision, the most allowed. Cancel one "
            "(`/access list`, or my App Home) or wait for the approvers before asking again."
        )
    if (recent or 0) >= limits.per_hour:
        return (
            f"You have filed {recent} requests in the last hour, the most allowed. "
            "Try again later, or ask an approver directly."
        )
    return None
