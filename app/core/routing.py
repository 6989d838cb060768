"""Where a new request goes: approved at once, denied, or to the approvers; and why.

Runs after Slack's ack. Fails closed: an undecided on-call check, a failing hook, anything
unexpected sends the request to humans with the reason shown; nothing is approved on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.core.deadline import call_with_deadline
from app.core.hooks import DEFAULT_HOOK_DEADLINE
from app.core.ports import Clock, Person
from app.oncall import OnCallChecker, OnCallResult
from app.workflows.model import (
    AccessRequestInfo,
    Decision,
    OnCall,
    Requester,
    Resource,
    Workflow,
)

log = logging.getLogger(__name__)

Action = Literal["approve", "deny", "route"]
Via = Literal["on_call", "policy", "break_glass"]


@dataclass(frozen=True)
class Route:
    action: Action
    # A sentence for approvers and requester; for an on-call approval, the evidence
    # ("on call: Payments Primary (level 1)"). None: plain routing to the approvers.
    reason: str | None
    via: Via | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # for the audit log
    # An on-call approval's cap (at most this many in this interval), counted when the
    # approval is recorded, under a lock per requester.
    cap: tuple[int, timedelta] | None = None
    announce: bool = True  # an on-call approval gets an FYI in the approvers' channel
    not_after: datetime | None = None  # the access ends by then (the on-call shift's end)


@dataclass(frozen=True)
class OnCallCheck:
    result: OnCallResult | None  # None: no rule, no PagerDuty, or nothing to look up
    note: str | None  # why the check did not run, when it did not
    cap: tuple[int, timedelta] | None = None  # the rule's cap on on-call approvals
    announce: bool = True  # the rule's `announce`
    end_with_shift: bool = False  # the rule's `end_with_shift`


class Router:
    def __init__(
        self,
        *,
        oncall: OnCallChecker | None,
        clock: Clock,
        hook_deadline: float = DEFAULT_HOOK_DEADLINE,
    ) -> None:
        self.oncall = oncall
        self.clock = clock
        self.hook_deadline = hook_deadline

    def route(
        self,
        workflow: Workflow,
        resource: Resource,
        requester: Person,
        *,
        duration: timedelta,
        justification: str,
        request_id: str | None = None,
        extension: bool = False,
        ticket: str | None = None,
    ) -> Route:
        check = self.check_on_call(workflow, requester)
        info = AccessRequestInfo(
            workflow=workflow.name,
            resource=resource,
            requester=Requester(requester.slack_id, requester.email, requester.name),
            duration=duration,
            justification=justification,
            now=self.clock(),
            on_call=check.result,
            request_id=request_id,
            is_extension=extension,
            ticket=ticket,
        )
        return decide_route(workflow, info, check, hook_deadline=self.hook_deadline)

    def check_on_call(self, workflow: Workflow, requester: Person) -> OnCallCheck:
        rule = workflow.auto_approve
        if rule is None:
            return OnCallCheck(None, None)
        if self.oncall is None:
            return OnCallCheck(
                None, "On-call auto-approval is off: PAGERDUTY_API_TOKEN is not set."
            )
        try:
            email = pagerduty_email(rule, requester.email)
        except Exception as exc:  # the policy author's function: any failure routes to humans
            log.warning("pagerduty_email mapping of %s failed: %r", workflow.name, exc)
            return OnCallCheck(
                None, f"Not auto-approved: the workflow's pagerduty_email mapping failed ({exc!r})."
            )
        if not email:
            return OnCallCheck(None, "Not auto-approved: Slack has no email for the requester.")
        try:
            result = self.oncall.check(email, rule)
        except Exception as exc:  # a checker bug: to humans now, not at the next sweep
            log.exception("the on-call check for %s raised", workflow.name)
            result = OnCallResult(
                None, f"the on-call check failed unexpectedly ({exc.__class__.__name__})"
            )
        cap = (
            (rule.max_auto_approvals, rule.interval)
            if rule.max_auto_approvals is not None
            else None
        )
        return OnCallCheck(
            result, None, cap, announce=rule.announce, end_with_shift=rule.end_with_shift
        )


def decide_route(
    workflow: Workflow,
    info: AccessRequestInfo,
    check: OnCallCheck,
    *,
    hook_deadline: float = DEFAULT_HOOK_DEADLINE,
) -> Route:
    """The policy decision: the workflow's hook first (under a deadline), then the on-call
    rule. Pure but for the hook, which is the policy author's code."""
    evidence = _evidence(check)
    if workflow.on_request is not None:
        on_request = workflow.on_request
        try:
            decision = call_with_deadline(
                lambda: on_request(info), hook_deadline, name="on_request"
            )
        except Exception as exc:  # the policy author's code: a failure is never an approval
            log.warning("on_request of %s raised %r", workflow.name, exc)
            return Route(
                "route",
                f"⚠️ The workflow's on_request hook failed ({exc.__class__.__name__}: {exc}), "
                "so an approver must decide.",
                evidence={**evidence, "hook_error": repr(exc)},
            )
        if decision is not None:
            if not isinstance(decision, Decision):
                return Route(
                    "route",
                    f"⚠️ The workflow's on_request hook returned {decision!r}, not a Decision, "
                    "so an approver must decide.",
                    evidence=evidence,
                )
            return Route(decision.action, decision.reason, "policy", {**evidence, "hook": True})
    return _on_call_route(check, evidence)


def _on_call_route(check: OnCallCheck, evidence: dict[str, Any]) -> Route:
    if check.result is None:
        return Route("route", check.note, evidence=evidence)
    result = check.result
    if result.on_call is True:
        not_after = shift_end(result) if check.end_with_shift else None
        if not_after is not None:
            evidence = {**evidence, "not_after": not_after.isoformat()}
        return Route(
            "approve",
            result.reason,
            "on_call",
            evidence,
            cap=check.cap,
            announce=check.announce,
            not_after=not_after,
        )
    if result.on_call is False:
        return Route("route", f"Not auto-approved: {result.reason}.", evidence=evidence)
    return Route(
        "route",
        f"⚠️ The on-call check could not decide ({result.reason}), so an approver must.",
        evidence=evidence,
    )


def shift_end(result: OnCallResult) -> datetime | None:
    """When the requester stops being on call: the latest `end` of the entries that made them
    on call; None when one of them is permanent (no `end`) or an end cannot be read."""
    ends: list[datetime] = []
    for entry in result.evidence:
        if not entry.end:
            return None
        try:
            end = datetime.fromisoformat(entry.end)
        except ValueError:
            log.warning("PagerDuty gave an on-call end that is not ISO 8601")
            return None
        ends.append(end if end.tzinfo else end.replace(tzinfo=UTC))
    return max(ends) if ends else None


def _evidence(check: OnCallCheck) -> dict[str, Any]:
    if check.result is None:
        return {}
    result = check.result
    return {
        "pagerduty_user_id": result.pagerduty_user_id,
        "on_call": [asdict(e) for e in result.evidence],
        "oncall_check": result.reason,
    }


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
    return mapping(slack_email) or slack_email
