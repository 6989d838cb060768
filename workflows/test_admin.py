"""Tests of the admin policy, run by `scripts/test` like any other test."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.testing import decide, load_workflow, make_request

workflow = load_workflow(Path(__file__).with_name("admin.py"))

TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TUESDAY_NIGHT = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_business_hours_go_to_two_approvers() -> None:
    outcome = decide(workflow, make_request(workflow, "orders-db-admin", now=TUESDAY_NOON))

    assert outcome.routed and outcome.required_approvals == 2
    assert outcome.reason == "business hours: admin access needs two approvals"


def test_on_call_at_night_goes_to_two_approvers_and_is_never_auto_approved() -> None:
    request = make_request(workflow, "orders-db-admin", now=TUESDAY_NIGHT, on_call=True)

    outcome = decide(workflow, request)

    assert outcome.routed and not outcome.approved and outcome.required_approvals == 2


def test_off_hours_without_on_call_is_denied() -> None:
    for when in (TUESDAY_NIGHT, SATURDAY_NOON):
        outcome = decide(
            workflow, make_request(workflow, "orders-db-admin", now=when, on_call=False)
        )

        assert outcome.denied
        assert outcome.reason and "only for whoever PagerDuty shows on call" in outcome.reason


def test_never_longer_than_an_hour() -> None:
    resource = workflow.resource("orders-db-admin")
    assert resource is not None
    assert max(workflow.durations_for(resource)) <= timedelta(hours=1)
    assert workflow.max_duration_for(resource) == timedelta(hours=1)
