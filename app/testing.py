"""Helpers for policy authors to unit-test their workflows with pytest, without Slack,
PagerDuty, a database or any grant target.

    from datetime import datetime, timedelta
    from app.testing import decide, load_workflow, make_request

    workflow = load_workflow("workflows/admin.py")

    def test_admin_off_hours_needs_on_call():
        request = make_request(workflow, "orders-db-admin", on_call=False,
                               now=datetime(2026, 11, 28, 23, 0, tzinfo=UTC))
        assert decide(workflow, request).denied
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from app.oncall import OnCallResult
from app.workflows.loader import WorkflowError, check_policy, load_file
from app.workflows.model import AccessRequestInfo, Workflow
from app.workflows.simulate import Outcome, request_info, simulate

__all__ = ["Outcome", "decide", "load_workflow", "make_request"]


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
