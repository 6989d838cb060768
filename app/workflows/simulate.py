"""What would happen to a request, computed from the policy alone: no Slack, no grant target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from app.core.durations import describe_duration
from app.core.routing import OnCallCheck, decide_route
from app.oncall import OnCallEvidence, OnCallResult
from app.workflows.model import (
    ON_CALL_APPROVERS,
    AccessRequestInfo,
    BreakGlass,
    Requester,
    Resource,
    Workflow,
)


@dataclass(frozen=True)
class Outcome:
    action: Literal["approve", "deny", "route"]
    reason: str | None
    via: str | None
    workflow: Workflow
    resource: Resource
    approvers: list[str]  # as written: user ids, emails, user groups; empty: channel members
    required_approvals: int
    announced: bool = True  # an automatic decision is posted to the approvers' channel
    self_approval: bool = False  # the requester's own approval counts
    not_after: datetime | None = None  # an on-call grant ends by then (end_with_shift)
    shorter: tuple[timedelta, ...] = ()  # what approvers may approve instead (approve for less)
    ticket_problem: str | None = None  # why the modal would refuse the ticket reference
    ticket_url: str | None = None  # the link every message would show
    escalate_after: timedelta | None = None  # a request still undecided then is re-posted…
    escalate_to: str | None = None  # …here (a channel or a user group)
    break_glass: BreakGlass | None = None  # the workflow's emergency access, if any

    def break_glass_line(self, email: str | None) -> str | None:
        rule = self.break_glass
        if rule is None:
            return None
        who = ", ".join(rule.who)
        listed = "listed" if email is not None and email in rule.who else "if listed"
        return (
            f"`/access break-glass` grants at once ({listed}: {who}) for at most "
            f"{describe_duration(rule.max_duration)}, alerting {rule.mention()} in "
            f"{self.workflow.approvers_channel}; announced again if unreviewed after "
            f"{describe_duration(rule.review_after)}"
        )

    @property
    def approved(self) -> bool:
        return self.action == "approve"

    @property
    def denied(self) -> bool:
        return self.action == "deny"

    @property
    def routed(self) -> bool:
        return self.action == "route"

    def describe(self) -> str:
        if self.action == "approve":
            how = "on call" if self.via == "on_call" else "by the workflow's on_request hook"
            quiet = "" if self.announced else "; no FYI in the approvers' channel"
            return f"approve at once ({how}{quiet})"
        if self.action == "deny":
            return "deny at once (the workflow's on_request hook)"
        who = ", ".join(self.approvers) or f"members of {self.workflow.approvers_channel}"
        needs = self.required_approvals
        own = "; the requester's own approval counts" if self.self_approval else ""
        if self.shorter:
            less = ", ".join(describe_duration(d) for d in self.shorter)
            own += f"; they may approve less: {less}"
        if self.escalate_after is not None and self.escalate_to is not None:
            to = self.escalate_to
            if to == ON_CALL_APPROVERS:
                to = "the approvers PagerDuty shows on call then"
            own += f"; undecided after {describe_duration(self.escalate_after)}, escalated to {to}"
        return (
            f"send to the approvers in {self.workflow.approvers_channel}; needs {needs} "
            f"approval{'s' if needs > 1 else ''} from {who}{own}"
        )


def simulated_on_call(
    on_call: bool, rule_level: int = 1, shift_ends: datetime | None = None
) -> OnCallResult:
    """PagerDuty's answer, simulated; `shift_ends` None: a permanent entry (no `end`)."""
    if not on_call:
        return OnCallResult(False, "not on call (simulated)")
    end = shift_ends.isoformat() if shift_ends else None
    evidence = OnCallEvidence(
        "PSIMULATED", "simulated escalation policy", rule_level, None, None, None, end
    )
    return OnCallResult(True, "on call (simulated)", (evidence,))


def request_info(
    workflow: Workflow,
    resource: Resource,
    *,
    email: str | None,
    slack_id: str = "U0SIMULATED",
    name: str | None = None,
    duration: timedelta | None = None,
    justification: str = "simulated request",
    now: datetime | None = None,
    on_call: bool | OnCallResult | None = None,
    shift_ends: datetime | None = None,
    ticket: str | None = None,
) -> AccessRequestInfo:
    if isinstance(on_call, bool):
        level = workflow.auto_approve.escalation_level if workflow.auto_approve else 1
        on_call = simulated_on_call(on_call, level, shift_ends)
    return AccessRequestInfo(
        workflow=workflow.name,
        resource=resource,
        requester=Requester(slack_id, email, name),
        duration=duration or workflow.durations_for(resource)[0],
        justification=justification,
        now=now or datetime.now(UTC),
        on_call=on_call if workflow.auto_approve is not None else None,
        ticket=ticket,
    )


def simulate(workflow: Workflow, info: AccessRequestInfo) -> Outcome:
    if workflow.auto_approve is None:
        check = OnCallCheck(None, None)
    elif info.on_call is None:
        check = OnCallCheck(None, "On-call status unknown (not simulated).")
    else:
        rule = workflow.auto_approve
        check = OnCallCheck(
            info.on_call, None, announce=rule.announce, end_with_shift=rule.end_with_shift
        )
    route = decide_route(workflow, info, check)
    return Outcome(
        action=route.action,
        reason=route.reason,
        via=route.via,
        workflow=workflow,
        resource=info.resource,
        approvers=workflow.approvers_for(info.resource),
        required_approvals=workflow.required_approvals_for(info.resource),
        announced=route.announce,
        self_approval=workflow.self_approval_for(info.resource),
        not_after=route.not_after,
        shorter=tuple(workflow.shorter_durations_for(info.resource, info.duration)),
        break_glass=workflow.break_glass,
        escalate_after=workflow.escalate_after,
        escalate_to=workflow.escalate_to,
        ticket_problem=workflow.ticket.problem(info.ticket) if workflow.ticket else None,
        ticket_url=workflow.ticket.link(info.ticket.strip())
        if workflow.ticket and info.ticket and not workflow.ticket.problem(info.ticket)
        else None,
    )


def report(outcome: Outcome, info: AccessRequestInfo) -> str:
    resource = outcome.resource
    on_call = "not asked (no OnCall rule)"
    if info.on_call is not None:
        on_call = "yes" if info.on_call.on_call else "no"
    lines = [
        f"request:  {info.requester.email or info.requester.slack_id} asks for {resource.name} "
        f"({resource.id}) for {describe_duration(info.duration)}",
        f"workflow: {outcome.workflow.name} ({outcome.workflow.location})",
        f"on call:  {on_call}",
    ]
    if outcome.ticket_problem:
        lines.append(f"ticket:   refused: {outcome.ticket_problem}")
    elif outcome.ticket_url:
        lines.append(f"ticket:   {info.ticket} ({outcome.ticket_url})")
    lines.append(f"decision: {outcome.describe()}")
    if outcome.reason:
        lines.append(f"why:      {outcome.reason}")
    if outcome.approved and outcome.not_after is not None:
        chosen = describe_duration(info.duration)
        if outcome.not_after < info.now + info.duration:
            ends = f"with the on-call shift at {outcome.not_after:%Y-%m-%d %H:%M %Z}, "
            lines.append(f"ends:     {ends}sooner than the {chosen} asked")
        else:
            lines.append(f"ends:     after the {chosen} asked (the on-call shift ends later)")
    glass = outcome.break_glass_line(info.requester.email)
    if glass:
        lines.append(f"breakglass: {glass}")
    if outcome.action != "deny":
        lines.append(f"grant:    {resource.grant.describe()}")
    return "\n".join(lines)
