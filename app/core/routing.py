"""Where a new request goes: granted at once (on call), or to the approvers, and why.

Runs after Slack's ack. Fails closed: anything undecided goes to humans, with the reason shown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.durations import describe_duration
from app.core.models import AccessRequest
from app.core.ports import Clock, Person
from app.oncall import OnCallChecker, OnCallResult
from app.workflows.model import OnCall, Workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    auto_approve: bool
    # Shown to approvers and requester. When auto-approving: the on-call evidence ("on call:
    # Payments (level 1)"); otherwise a sentence saying why humans decide.
    reason: str | None
    evidence: dict[str, Any] = field(default_factory=dict)  # recorded in the audit log


TO_HUMANS = Route(auto_approve=False, reason=None)


class Router:
    def __init__(
        self, *, oncall: OnCallChecker | None, sessions: sessionmaker[Session], clock: Clock
    ) -> None:
        self.oncall = oncall
        self.sessions = sessions
        self.clock = clock

    def route(self, workflow: Workflow, requester: Person) -> Route:
        rule = workflow.auto_approve
        if rule is None:
            return TO_HUMANS
        if self.oncall is None:
            return Route(False, "On-call auto-approval is off: PAGERDUTY_API_TOKEN is not set.")
        try:
            email = pagerduty_email(rule, requester.email)
        except Exception as exc:  # the policy author's function: any failure routes to humans
            log.warning("pagerduty_email mapping of %s failed: %r", workflow.name, exc)
            return Route(
                False,
                f"Not auto-approved: the workflow's pagerduty_email mapping failed ({exc!r}).",
            )
        if not email:
            return Route(False, "Not auto-approved: Slack has no email address for the requester.")
        capped = self._cap_reached(rule, requester.slack_id)
        if capped:
            return Route(False, capped)
        result = self.oncall.check(email, rule)
        return _route_for(result, email)

    def _cap_reached(self, rule: OnCall, slack_id: str) -> str | None:
        if rule.max_auto_approvals is None:
            return None
        since = self.clock() - rule.interval
        with self.sessions() as session:
            count = session.scalar(
                select(func.count())
                .select_from(AccessRequest)
                .where(
                    AccessRequest.requester_slack_id == slack_id,
                    AccessRequest.auto_approved.is_(True),
                    AccessRequest.decided_at >= since,
                )
            )
        if (count or 0) < rule.max_auto_approvals:
            return None
        return (
            f"Not auto-approved: the requester reached the cap of {rule.max_auto_approvals} "
            f"on-call auto-approvals in {describe_duration(rule.interval)}."
        )


def pagerduty_email(rule: OnCall, slack_email: str | None) -> str | None:
    """The requester's PagerDuty email: the Slack one, unless the workflow maps it."""
    if not slack_email:
        return None
    mapping = rule.pagerduty_email
    if mapping is None:
        return slack_email
    if isinstance(mapping, Mapping):
        lowered = {k.lower(): v for k, v in mapping.items()}
        return lowered.get(slack_email.lower(), slack_email)
    return mapping(slack_email) or slack_email  # policy code: Router.route guards it


def _route_for(result: OnCallResult, email: str) -> Route:
    evidence = {
        "pagerduty_email": email,
        "pagerduty_user_id": result.pagerduty_user_id,
        "on_call": [asdict(e) for e in result.evidence],
        "oncall_check": result.reason,
    }
    if result.on_call is True:
        return Route(True, result.reason, evidence)
    if result.on_call is False:
        return Route(False, f"Not auto-approved: {result.reason}.", evidence)
    return Route(
        False,
        f"⚠️ The on-call check could not decide ({result.reason}), so an approver must.",
        evidence,
    )
