"""Helpers for policy authors to unit-test their workflows with pytest, without Slack,
PagerDuty, a database or any grant target.

    from datetime import datetime, timedelta
    from app.testing import decide, load_workflow, make_request

    workflow = load_workflow("workflows/admin.py")

    def test_admin_off_hours_needs_on_call():
        request = make_request(workflow, "orders-db-admin", on_call=False,
                               now=datetime(2026, 11, 28, 23, 0, tzinfo=UTC))
        assert decide(workflow, request).denied

It also holds the contract every grant strategy must keep (`check_strategy`), for authors of
`Python` strategies and for ours:

    from app.testing import check_strategy, grant_context

    def test_my_strategy_keeps_the_contract():
        problems = check_strategy(
            MyStrategy(...),
            grant_context(email="alice@example.com"),
            has_access=lambda: "alice" in my_target.members(),
            failing=[(MyStrategy(group="no-such-group"), grant_context())],
        )
        assert problems == []
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.grants.base import GrantContext, Granted, GrantError, GrantStrategy, GrantUser
from app.oncall import OnCallResult
from app.workflows.loader import WorkflowError, check_policy, load_file
from app.workflows.model import AccessRequestInfo, Workflow
from app.workflows.simulate import Outcome, request_info, simulate

__all__ = [
    "Outcome",
    "check_strategy",
    "decide",
    "grant_context",
    "load_workflow",
    "make_request",
]


def load_workflow(path: str | Path, name: str | None = None) -> Workflow:
    """Load one workflow file and validate it as `accessbot workflows check` would (except for
    environment variables, which a test machine need not have). Raises WorkflowError."""
    workflows, problems = load_file(Path(path))
    problems += [p for p in check_policy(workflows) if not p.environment and not p.warning]
    if problems:
        raise WorkflowError(problems)
    if name is not None:
        workflows = [w for w in workflows if w.name == name]
    if len(workflows) != 1:
        raise ValueError(f"{path} defines {len(workflows)} matching workflows; pass name=")
    return workflows[0]


def make_request(
    workflow: Workflow,
    resource_id: str,
    *,
    email: str | None = "alice@example.com",
    slack_id: str = "U0TESTUSER",
    name: str | None = "Alice Example",
    duration: timedelta | None = None,
    justification: str = "testing the policy",
    now: datetime | None = None,
    on_call: bool | OnCallResult | None = None,
    shift_ends: datetime | None = None,
    ticket: str | None = None,
) -> AccessRequestInfo:
    """A request as hooks see it. `on_call=True/False` simulates PagerDuty's answer;
    `shift_ends` the end of that on-call entry (None: a permanent one)."""
    resource = workflow.resource(resource_id)
    if resource is None:
        known = ", ".join(r.id for r in workflow.resources)
        raise ValueError(f"workflow {workflow.name!r} has no resource {resource_id!r} ({known})")
    return request_info(
        workflow,
        resource,
        email=email,
        slack_id=slack_id,
        name=name,
        duration=duration,
        justification=justification,
        now=now,
        on_call=on_call,
        shift_ends=shift_ends,
        ticket=ticket,
    )


def decide(workflow: Workflow, request: AccessRequestInfo) -> Outcome:
    """What accessbot would do with `request`: `.approved`, `.denied`, `.routed`, `.reason`."""
    return simulate(workflow, request)


def grant_context(
    *,
    email: str | None = "alice@example.com",
    slack_id: str = "U0TESTUSER",
    name: str | None = "Alice Example",
    resource: str = "test-resource",
    expires_in: timedelta = timedelta(hours=1),
) -> GrantContext:
    """A grant event as the engine would hand it to a strategy."""
    grant_id = uuid.uuid4()
    return GrantContext(
        event="grant",
        request_id=uuid.uuid4(),
        grant_id=grant_id,
        event_id=str(uuid.uuid5(grant_id, "grant")),
        workflow="test",
        resource=resource,
        resource_name=resource,
        user=GrantUser(slack_id=slack_id, email=email, name=name),
        expires_at=datetime.now(UTC) + expires_in,
        approved_by="U0APPROVER",
        justification="contract test",
    )


def check_strategy(
    strategy: GrantStrategy,
    context: GrantContext,
    *,
    has_access: Callable[[], bool],
    failing: Iterable[tuple[GrantStrategy, GrantContext]] = (),
) -> list[str]:
    """What `strategy` does that the engine cannot live with; [] when it keeps the contract.

    Against a real (test) target: grant is idempotent, revoke is idempotent and may follow a
    revoke, grant then revoke leaves the target as it was (when the access existed before,
    grant must say so with `Granted(already_had=True)`: the engine then never revokes it), and
    every failure is a GrantError. `has_access()` looks at the target; `failing` are calls that
    must fail (an unknown user, a missing group), each checked for grant and for revoke.
    """
    problems: list[str] = []
    before = has_access()

    def call(what: str, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except GrantError as exc:
            problems.append(f"{what} failed: {exc}")
        except Exception as exc:
            problems.append(f"{what} raised {type(exc).__name__}, not GrantError: {exc}")
        return None

    first = call("grant", lambda: strategy.grant(context))
    if first is not None and not isinstance(first, Granted):
        problems.append(f"grant returned {type(first).__name__}; return Granted or None")
        first = None
    if not problems and not has_access():
        problems.append("after grant the target shows no access")
    call("a second grant", lambda: strategy.grant(context))
    if not problems and not has_access():
        problems.append("after a second grant the target shows no access")
    undo = dict(first.undo) if isinstance(first, Granted) else {}
    if any(not isinstance(k, str) or not isinstance(v, str) for k, v in undo.items()):
        problems.append(f"Granted.undo must map strings to strings: {undo!r}")
    already_had = isinstance(first, Granted) and first.already_had
    if before and not already_had:
        problems.append(
            "the access existed before the grant, but grant did not return "
            "Granted(already_had=True): the engine would take it away at revoke"
        )
    if not before and already_had:
        problems.append("grant said the access existed already, but the target showed none")
    if not already_had:
        revoke_context = replace(context, event="revoke", undo=undo)
        call("revoke", lambda: strategy.revoke(revoke_context))
        call("a second revoke", lambda: strategy.revoke(revoke_context))
        if has_access() != before:
            problems.append(
                "grant then revoke did not leave the target as it was "
                f"(access before: {before}, after: {has_access()})"
            )
    for broken, broken_context in failing:
        for event in ("grant", "revoke"):
            method = broken.grant if event == "grant" else broken.revoke
            try:
                method(replace(broken_context, event=event))
            except GrantError:
                continue
            except Exception as exc:
                problems.append(
                    f"{broken.describe()}: {event} raised {type(exc).__name__}, not GrantError"
                )
                continue
            if event == "grant":
                problems.append(f"{broken.describe()}: grant was expected to fail but succeeded")
    return problems
