"""Tests of the production support policy."""

from pathlib import Path

from app.testing import decide, load_workflow, make_request

workflow = load_workflow(Path(__file__).with_name("production.py"))


def test_on_call_is_granted_at_once() -> None:
    outcome = decide(workflow, make_request(workflow, "support-console", on_call=True))

    assert outcome.approved and outcome.via == "on_call"


def test_everyone_else_asks_an_approver() -> None:
    outcome = decide(workflow, make_request(workflow, "support-console", on_call=False))

    assert outcome.routed and outcome.approvers == ["U0AAA", "U0BBB"]
