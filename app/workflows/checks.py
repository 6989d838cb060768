"""Validation of a loaded policy: every problem with the file and line it comes from.

`accessbot workflows check` prints these; `accessbot serve` refuses to start on any of them.
Warnings are printed but do not fail the check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from app.grants.base import GrantStrategy, Retry
from app.grants.python import signature_problem
from app.workflows.model import (
    ON_CALL_APPROVERS,
    BreakGlass,
    Location,
    OnCall,
    Resource,
    Ticket,
    Workflow,
)

CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
HOOKS = ("on_request", "after_grant", "after_revoke", "after_deny")
COMMAND_WORDS = ("help", "list")  # `/access help` and `/access list` are not resources


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str
    warning: bool = False
    environment: bool = False  # about this machine's environment, not the policy's code

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.location}: {kind}{self.message}"


def _is_sequence(value: object) -> bool:
    return isinstance(value, list | tuple)


def _is_strategy(value: object) -> bool:
    return isinstance(value, GrantStrategy) and isinstance(getattr(value, "retry", None), Retry)


def check_retry(retry: Retry, at: Location) -> Iterator[Problem]:
    if not isinstance(retry.attempts, int) or retry.attempts < 1:
        yield Problem(at, "retry attempts must be a whole number of at least 1")
    if not isinstance(retry.backoff, timedelta) or retry.backoff <= timedelta(0):
        yield Problem(at, "retry backoff must be a positive timedelta")
    elif not isinstance(retry.max_backoff, timedelta) or retry.max_backoff < retry.backoff:
        yield Problem(at, "retry max_backoff must be a timedelta no shorter than backoff")


def check_approvers(approvers: object, at: Location, what: str) -> Iterator[Problem]:
    if not _is_sequence(approvers):
        yield Problem(at, f"{what} must be a list of Slack user ids, emails or user group ids")
        return
    for approver in approvers:  # type: ignore[attr-defined]
        if not isinstance(approver, str) or not (
            USER_ID.match(approver) or USERGROUP_ID.match(approver) or EMAIL.match(approver)
        ):
            yield Problem(
                at,
                f"approver {approver!r} is not a Slack user id (U0123ABCD), "
                "an email or a user group id (S0123ABCD)",
            )


def check_durations(
    durations: object, max_duration: timedelta | None, at: Location, what: str
) -> Iterator[Problem]:
    if not _is_sequence(durations) or not durations:
        yield Problem(at, f"{what} must be a non-empty list of timedelta")
        return
    for duration in durations:  # type: ignore[attr-defined]
        if not isinstance(duration, timedelta):
            yield Problem(at, f"duration {duration!r} is not a timedelta")
        elif duration <= timedelta(0):
            yield Problem(at, f"duration {duration} is not positive")
        elif max_duration is not None and duration > max_duration:
            yield Problem(at, f"duration {duration} is longer than max_duration {max_duration}")
    if len(set(durations)) != len(durations):  # type: ignore[arg-type]
        yield Problem(at, f"{what} lists the same duration twice")


def check_max_duration(value: object, at: Location) -> Iterator[Problem]:
    if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
        yield Problem(at, f"max_duration must be a positive timedelta (got {value!r})")


def check_required_approvals(
    value: object, approvers: Sequence[str], at: Location
) -> Iterator[Problem]:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        yield Problem(
            at, f"required_approvals must be a whole number of at least 1 (got {value!r})"
        )
        return
    only_user_ids = approvers and all(isinstance(a, str) and USER_ID.match(a) for a in approvers)
    if only_user_ids and value > len(set(approvers)):
        yield Problem(
            at,
            f"required_approvals is {value} but only {len(set(approvers))} approver(s) "
            "are listed: no request could ever be approved",
        )


def check_on_call(rule: object, at: Location) -> Iterator[Problem]:
    if rule is None:
        return
    if not isinstance(rule, OnCall):
        yield Problem(at, "auto_approve must be OnCall(...) or None")
        return
    at = rule.location
    if not isinstance(rule.escalation_level, int) or rule.escalation_level < 1:
        yield Problem(at, "escalation_level must be a whole number of at least 1")
    for name in ("escalation_policy_ids", "schedule_ids"):
        ids = getattr(rule, name)
        if not _is_sequence(ids) or not all(isinstance(i, str) and i for i in ids):
            yield Problem(at, f"{name} must be a list of PagerDuty ids")
    mapping = rule.pagerduty_email
    if mapping is not None and not isinstance(mapping, Mapping) and not callable(mapping):
        yield Problem(at, "pagerduty_email must be a dict or a function")
    if rule.max_auto_approvals is not None and (
        not isinstance(rule.max_auto_approvals, int) or rule.max_auto_approvals < 1
    ):
        yield Problem(at, "max_auto_approvals must be a whole number of at least 1, or None")
    if not isinstance(rule.interval, timedelta) or rule.interval <= timedelta(0):
        yield Problem(at, "interval must be a positive timedelta")
    if not isinstance(rule.end_with_shift, bool):
        yield Problem(at, f"end_with_shift must be True or False (got {rule.end_with_shift!r})")
    if not isinstance(rule.announce, bool):
        yield Problem(at, f"announce must be True or False (got {rule.announce!r})")


def check_ticket(ticket: object, at: Location) -> Iterator[Problem]:
    if ticket is None:
        return
    if not isinstance(ticket, Ticket):
        yield Problem(at, "ticket must be Ticket(...) or None")
        return
    at = ticket.location
    try:
        compiled = re.compile(ticket.pattern) if isinstance(ticket.pattern, str) else None
    except re.error as exc:
        yield Problem(at, f"ticket pattern {ticket.pattern!r} is not a regular expression: {exc}")
        compiled = None
    if not isinstance(ticket.pattern, str) or not ticket.pattern:
        yield Problem(at, "ticket pattern must be a non-empty regular expression")
    elif compiled is not None and compiled.fullmatch(""):
        yield Problem(at, f"ticket pattern {ticket.pattern!r} matches an empty reference")
    if (
        not isinstance(ticket.url, str)
        or not ticket.url.startswith(("https://", "http://"))
        or ticket.url.count("{}") != 1
    ):
        yield Problem(
            at,
            f"ticket url {ticket.url!r} must be an http(s) URL with one {{}} where the "
            "reference goes",
        )
    if not isinstance(ticket.required, bool):
        yield Problem(at, f"ticket required must be True or False (got {ticket.required!r})")
    if not isinstance(ticket.label, str) or not ticket.label.strip() or len(ticket.label) > 30:
        yield Problem(at, "ticket label must be a non-empty string of at most 30 characters")


def check_break_glass(rule: object, at: Location) -> Iterator[Problem]:
    if rule is None:
        return
    if not isinstance(rule, BreakGlass):
        yield Problem(at, "break_glass must be BreakGlass(...) or None")
        return
    at = rule.location
    if not isinstance(rule.max_duration, timedelta) or rule.max_duration <= timedelta(0):
        yield Problem(
            at, f"break-glass max_duration must be a positive timedelta (got {rule.max_duration!r})"
        )
    if not _is_sequence(rule.who) or not rule.who:
        yield Problem(
            at, "break-glass who must name at least one Slack user id, email or user group id"
        )
    else:
        yield from check_approvers(rule.who, at, "break-glass who")
    if not isinstance(rule.notify, str) or not (
        rule.notify in ("here", "channel") or USERGROUP_ID.match(rule.notify)
    ):
        yield Problem(
            at,
            f'break-glass notify {rule.notify!r} must be "here", "channel" or a user group '
            "id (S0123ABCD)",
        )
    if not isinstance(rule.review_after, timedelta) or rule.review_after <= timedelta(0):
        yield Problem(
            at, f"break-glass review_after must be a positive timedelta (got {rule.review_after!r})"
        )


def check_escalation(workflow: Workflow, at: Location) -> Iterator[Problem]:
    after, to = workflow.escalate_after, workflow.escalate_to
    if after is None and to is None:
        return
    if after is None or to is None:
        yield Problem(at, "escalate_after and escalate_to go together: set both, or neither")
        return
    if not isinstance(after, timedelta) or after <= timedelta(0):
        yield Problem(at, f"escalate_after must be a positive timedelta (got {after!r})")
    elif isinstance(workflow.request_ttl, timedelta) and after >= workflow.request_ttl:
        yield Problem(
            at,
            f"escalate_after {after} is not shorter than request_ttl {workflow.request_ttl}: "
            "requests would expire before they escalate",
        )
    if not isinstance(to, str) or not (
        CHANNEL_ID.match(to) or USERGROUP_ID.match(to) or to == ON_CALL_APPROVERS
    ):
        yield Problem(
            at,
            f"escalate_to {to!r} must be a Slack channel id (C0123ABCD), a user group id "
            "(S0123ABCD) or ON_CALL_APPROVERS",
        )
    elif to == workflow.approvers_channel:
        yield Problem(at, "escalate_to is the approvers' channel itself: escalate elsewhere")


def check_resource(workflow: Workflow, resource: Resource) -> Iterator[Problem]:
    at = resource.location
    if not isinstance(resource.id, str) or not RESOURCE_ID.match(resource.id):
        yield Problem(
            at, f"resource id {resource.id!r} must be 1-100 letters, digits or _.:/- characters"
        )
    if not isinstance(resource.name, str) or not resource.name.strip():
        yield Problem(at, "resource name must be a non-empty string")
    elif len(resource.name) > 75:
        yield Problem(
            at, "resource name must be at most 75 characters (Slack's limit for an option)"
        )
    if not _is_strategy(resource.grant):
        yield Problem(
            at, "grant must be a grant strategy (Webhook(...), PostgresRole(...), Python(...))"
        )
    else:
        yield from check_retry(resource.grant.retry, at)
        for message in getattr(resource.grant, "problems", list)():
            yield Problem(at, message)
        for name in getattr(resource.grant, "required_env", list)():
            if name not in os.environ:
                yield Problem(at, f"environment variable {name} is not set", environment=True)
        for message in getattr(resource.grant, "warnings", list)():
            yield Problem(at, message, warning=True)
    yield from check_max_duration(resource.max_duration, at)
    if resource.allow_self_approval is not None and not isinstance(
        resource.allow_self_approval, bool
    ):
        yield Problem(
            at,
            "allow_self_approval must be True, False or None "
            f"(got {resource.allow_self_approval!r})",
        )
    if resource.durations is not None:
        yield from check_durations(
            resource.durations, workflow.max_duration_for(resource), at, "resource durations"
        )
    if resource.approvers is not None:
        yield from check_approvers(resource.approvers, at, "resource approvers")
    if resource.required_approvals is not None or resource.approvers is not None:
        yield from check_required_approvals(
            workflow.required_approvals_for(resource), workflow.approvers_for(resource), at
        )


def check_workflow(workflow: Workflow) -> Iterator[Problem]:
    at = workflow.location
    if not isinstance(workflow.name, str) or not workflow.name.strip():
        yield Problem(at, "workflow name must be a non-empty string")
    if not isinstance(workflow.approvers_channel, str) or not CHANNEL_ID.match(
        workflow.approvers_channel
    ):
        yield Problem(
            at,
            f"approvers_channel {workflow.approvers_channel!r} is not a Slack channel id "
            "(like C0123ABCD)",
        )
    yield from check_approvers(workflow.approvers, at, "approvers")
    yield from check_max_duration(workflow.max_duration, at)
    max_duration = workflow.max_duration if isinstance(workflow.max_duration, timedelta) else None
    yield from check_durations(workflow.durations, max_duration, at, "durations")
    if _is_sequence(workflow.approvers):
        yield from check_required_approvals(workflow.required_approvals, workflow.approvers, at)
    yield from check_on_call(workflow.auto_approve, at)
    yield from check_ticket(workflow.ticket, at)
    yield from check_escalation(workflow, at)
    yield from check_break_glass(workflow.break_glass, at)
    if not isinstance(workflow.approve_for_less, bool):
        yield Problem(
            at, f"approve_for_less must be True or False (got {workflow.approve_for_less!r})"
        )
    if not isinstance(workflow.allow_self_approval, bool):
        yield Problem(
            at, f"allow_self_approval must be True or False (got {workflow.allow_self_approval!r})"
        )
    if not isinstance(workflow.request_ttl, timedelta) or workflow.request_ttl <= timedelta(0):
        yield Problem(
            at, f"request_ttl must be a positive timedelta (got {workflow.request_ttl!r})"
        )
    for hook in HOOKS:
        function = getattr(workflow, hook)
        if function is not None:
            problem = signature_problem(hook, function, "the request")
            if problem:
                yield Problem(at, problem)
    if not _is_sequence(workflow.resources) or not workflow.resources:
        yield Problem(at, "resources must be a non-empty list of Resource(...)")
        return
    for resource in workflow.resources:
        if not isinstance(resource, Resource):
            yield Problem(at, f"{resource!r} is not a Resource(...)")
            continue
        yield from check_resource(workflow, resource)


def check_policy(workflows: list[Workflow]) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, Location] = {}
    resource_ids: dict[str, Location] = {}
    typed: dict[str, tuple[str, Location]] = {}  # what `/access <word>` matches, casefolded
    for workflow in workflows:
        problems.extend(check_workflow(workflow))
        if workflow.name in names:
            problems.append(
                Problem(
                    workflow.location,
                    f"workflow name {workflow.name!r} is already used at {names[workflow.name]}",
                )
            )
        names.setdefault(workflow.name, workflow.location)
        for resource in workflow.resources if _is_sequence(workflow.resources) else ():
            rid = getattr(resource, "id", None)
            if not isinstance(rid, str):
                continue
            if rid in resource_ids:
                problems.append(
                    Problem(
                        resource.location,
                        f"resource id {rid!r} is already used at {resource_ids[rid]}",
                    )
                )
            resource_ids.setdefault(rid, resource.location)
            problems.extend(_typed_names(resource, typed))
    return problems


def _typed_names(resource: Resource, typed: dict[str, tuple[str, Location]]) -> Iterator[Problem]:
    """`/access <id or name>` must name one resource: no two may share a word people type."""
    name = " ".join(resource.name.split()) if isinstance(resource.name, str) else ""
    for key in {resource.id.casefold(), name.casefold()} - {""}:
        if key in COMMAND_WORDS:
            yield Problem(
                resource.location,
                f"resource id or name {key!r} is taken by `/access {key}`: choose another",
            )
        elif key in typed and typed[key][0] != resource.id:
            other, where = typed[key]
            yield Problem(
                resource.location,
                f"`/access {key}` is ambiguous: resource {other!r} at {where} has the same id "
                f"or name (ignoring case), and is the one it picks",
                warning=True,
            )
        typed.setdefault(key, (resource.id, resource.location))
