"""Is the requester on call right now? The interface the access workflows ask through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.workflows.model import OnCall


@dataclass(frozen=True)
class OnCallEvidence:
    """One on-call entry that made the requester count as on call."""

    escalation_policy_id: str
    escalation_policy_name: str
    escalation_level: int
    schedule_id: str | None
    schedule_name: str | None
    start: str | None  # ISO strings as PagerDuty gave them (None = permanent)
    end: str | None


@dataclass(frozen=True)
class OnCallResult:
    """The answer of one check.

    `on_call` is True when the requester is on call now, False when the check ran and they are
    not, and None when it could not be decided (error, timeout, rate limit): callers must then
    fall back to a human approval.
    """

    on_call: bool | None
    reason: str
    evidence: tuple[OnCallEvidence, ...] = ()
    pagerduty_user_id: str | None = None


class OnCallChecker(Protocol):
    def check(self, email: str, rule: OnCall) -> OnCallResult: ...


__all__ = ["OnCallChecker", "OnCallEvidence", "OnCallResult"]
