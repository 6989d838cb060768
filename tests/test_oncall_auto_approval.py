"""On-call auto-approval through PagerDuty, end to end: the real client over HTTPS to a fake."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from app.core.models import GrantState, RequestState
from app.oncall import OnCallResult
from app.workflows.model import OnCall, Workflow
from tests.support.bot import APPROVERS_CHANNEL, REQUESTER, Bot, default_workflows
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.fake_slack import Call
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

PAYMENTS = ("PPAYMENTS", "Payments Primary")


def with_rule(webhook: WebhookReceiver, rule: OnCall | None) -> list[Workflow]:
    (workflow,) = default_workflows(webhook.url)
    return [replace(workflow, auto_approve=rule)]


@pytest.fixture
def pagerduty(fake_pagerduty: FakePagerDuty) -> FakePagerDuty:
    fake_pagerduty.add_user("PALICE", "alice@example.com", "Alice Requester")
    return fake_pagerduty


@pytest.fixture
def oncall_bot(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver, pagerduty: FakePagerDuty
) -> Callable[..., Bot]:
    def start(rule: OnCall | None = None, **settings: object) -> Bot:
        return bot_factory(
            workflows=with_rule(webhook, rule or OnCall(escalation_level=1)),
            pagerduty_api_token=pagerduty.token,
            pagerduty_api_url=pagerduty.base_url,
            **settings,
        )

    return start


def submit(bot: Bot) -> None:
    response = bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="INC-99 payments down", duration_seconds=900
    )
    assert response.status_code == 200 and response.content == b""


def approvers_post(bot: Bot) -> Call:
    return bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]


def test_on_call_requester_is_granted_without_a_click(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1, "SWEEKLY", "Payments Weekly")
    bot = oncall_bot()

    submit(bot)

    granted = wait_until(lambda: bot.webhook.events_of("grant"), what="the grant webhook")
    assert granted[0]["approved_by"] == "accessbot"
    (request,) = bot.requests()
    assert request.state == RequestState.APPROVED and request.auto_approved
    wait_until(lambda: bot.grants()[0].state == GrantState.ACTIVE, what="the grant recorded")
    fyi = approvers_post(bot)
    assert fyi.buttons() == []
    assert "Payments Primary" in fyi.text() and "level 1" in fyi.text()
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert "because PagerDuty shows you on call" in dm.text() and "Payments Primary" in dm.text()
    assert not any("sent to the approvers" in c.text() for c in bot.slack.dms_to(REQUESTER))
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert approved.actor == "accessbot" and approved.detail["via"] == "on_call"
    (evidence,) = approved.detail["on_call"]
    assert evidence["escalation_policy_id"] == "PPAYMENTS"
    assert evidence["schedule_id"] == "SWEEKLY" and evidence["escalation_level"] == 1
    assert approved.detail["pagerduty_user_id"] == "PALICE"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda pd: pd.add_oncall("PALICE", *PAYMENTS, 2, "SWEEKLY", "W"), "not on call"),
        (lambda pd: None, "not on call"),
    ],
    ids=["level-2-with-a-level-1-rule", "off-shift"],
)
def test_requester_not_on_call_goes_to_the_approvers(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty, setup: Callable, reason: str
) -> None:
    setup(pagerduty)
    bot = oncall_bot()

    submit(bot)

    post = approvers_post(bot)
    assert post.buttons() == ["Approve", "Deny"]
    assert reason in post.text()
    time.sleep(0.3)
    assert bot.requests()[0].state == RequestState.PENDING and bot.webhook.attempts == []
    assert bot.audit_events()[-1] == "routed_to_approvers"


@pytest.mark.parametrize(
    ("misbehave", "reason"),
    [
        (lambda pd: pd.forced_statuses.extend([500] * 4), "PagerDuty answered 500"),
        (lambda pd: pd.forced_statuses.extend([503] * 4), "PagerDuty answered 503"),
        (lambda pd: setattr(pd, "delay", 5.0), "did not answer within 2 s"),
        (lambda pd: setattr(pd, "always_429", True), "rate limited"),
    ],
    ids=["500", "503", "timeout", "429-forever"],
)
def test_pagerduty_trouble_never_grants_and_says_why(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty, misbehave: Callable, reason: str
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1, "SWEEKLY", "Payments Weekly")
    bot = oncall_bot()
    misbehave(pagerduty)

    started = time.monotonic()
    submit(bot)
    post = approvers_post(bot)
    elapsed = time.monotonic() - started

    assert elapsed < 5, "the check is bounded to about 2 s"
    assert post.buttons() == ["Approve", "Deny"]
    assert "could not decide" in post.text() and reason in post.text()
    assert bot.requests()[0].state == RequestState.PENDING
    assert bot.grants() == [] and bot.webhook.attempts == []
    routed = bot.audit()[-1]
    assert routed.event == "routed_to_approvers" and reason in routed.detail["reason"]


def test_unknown_email_goes_to_the_approvers(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty, fake_slack
) -> None:
    fake_slack.add_user(REQUESTER, "alice@contractor.example", "Alice")
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    bot = oncall_bot()

    submit(bot)

    post = approvers_post(bot)
    assert "no PagerDuty user has the email alice@contractor.example" in post.text()
    assert post.buttons() == ["Approve", "Deny"] and bot.grants() == []


def test_workflow_maps_a_slack_email_to_the_pagerduty_one(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty, fake_slack
) -> None:
    fake_slack.add_user(REQUESTER, "Alice@Contractor.example", "Alice")
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    bot = oncall_bot(OnCall(pagerduty_email={"alice@contractor.example": "alice@example.com"}))

    submit(bot)

    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant for the mapped email")
    assert bot.requests()[0].auto_approved


def test_policy_and_schedule_filters_are_honoured(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", "POTHER", "Other team", 1, "SOTHER", "Other weekly")
    bot = oncall_bot(OnCall(escalation_policy_ids=["PPAYMENTS"], schedule_ids=["SWEEKLY"]))

    submit(bot)

    post = approvers_post(bot)
    assert post.buttons() == ["Approve", "Deny"]
    (oncalls,) = pagerduty.requests_to("/oncalls")
    assert oncalls.params["escalation_policy_ids[]"] == ["PPAYMENTS"]
    assert oncalls.params["schedule_ids[]"] == ["SWEEKLY"]


def test_auto_approvals_are_capped_per_user(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    bot = oncall_bot(OnCall(max_auto_approvals=1, interval=timedelta(hours=12)))
    submit(bot)
    wait_until(lambda: bot.webhook.events_of("grant"), what="the first, auto-approved, grant")

    submit(bot)

    second = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL, count=2)[1]
    assert second.buttons() == ["Approve", "Deny"]
    assert "cap of 1 on-call auto-approvals in 12 hours" in second.text()
    assert [r.auto_approved for r in bot.requests()] == [True, False]


def test_without_a_pagerduty_token_the_rule_is_off_and_says_so(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    bot = bot_factory(workflows=with_rule(webhook, OnCall()))

    submit(bot)

    post = approvers_post(bot)
    assert "auto-approval is off: PAGERDUTY_API_TOKEN is not set" in post.text()
    assert post.buttons() == ["Approve", "Deny"]
    assert (
        "PAGERDUTY_API_TOKEN is not set: on-call auto-approval is off for production" in caplog.text
    )


def test_the_check_runs_after_slacks_ack(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    pagerduty.delay = 0.7  # two requests: 1.4 s, within the 2 s deadline
    bot = oncall_bot()

    submit(bot)

    assert bot.grants() == [] and pagerduty.requests_to("/oncalls") == []
    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant after the slow check")


def test_an_ended_shift_stops_auto_approving(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    bot = oncall_bot(pagerduty_oncall_cache_seconds=0.5)
    submit(bot)
    wait_until(lambda: bot.webhook.events_of("grant"), what="the first grant")
    pagerduty.clear_oncalls()  # the shift ends
    time.sleep(0.6)  # the on-call answer's cache window passes

    submit(bot)

    second = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL, count=2)[1]
    assert second.buttons() == ["Approve", "Deny"] and "not on call" in second.text()


def test_the_cap_holds_when_requests_arrive_at_once(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1)
    bot = oncall_bot(OnCall(max_auto_approvals=1, interval=timedelta(hours=12)))
    barrier = threading.Barrier(5)

    def submit_at_once() -> None:
        barrier.wait()
        submit(bot)

    threads = [threading.Thread(target=submit_at_once) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_until(
        lambda: len(bot.requests()) == 5 and all(r.routed_at for r in bot.requests()),
        what="all five requests to be routed",
    )
    assert sorted(r.auto_approved for r in bot.requests()) == [False] * 4 + [True]
    assert len(bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL, count=5)) == 5


def test_an_unexpected_on_call_checker_error_goes_to_humans_at_once(
    oncall_bot: Callable[..., Bot], pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    pagerduty.add_oncall("PALICE", *PAYMENTS, 1, "SWEEKLY", "Payments Weekly")
    bot = oncall_bot()  # the sweep runs every 30 s: a stalled request would wait for it
    assert bot.runtime.oncall is not None

    def broken(email: str, rule: OnCall) -> OnCallResult:
        raise KeyError("a bug in the checker, not an HTTP error")

    monkeypatch.setattr(bot.runtime.oncall, "check", broken)
    started = time.monotonic()
    submit(bot)
    post = approvers_post(bot)

    assert time.monotonic() - started < 5
    assert post.buttons() == ["Approve", "Deny"]
    assert "the on-call check failed unexpectedly (KeyError)" in post.text()
    (request,) = bot.requests()
    assert request.state == RequestState.PENDING and request.routed_at is not None
    assert bot.grants() == [] and bot.webhook.attempts == []
