"""OnCall(announce=False): an on-call grant without an FYI in the approvers' channel, still in
the audit log, App Home and the requester's DMs. End to end: signed Slack requests, the real
PagerDuty client against the fake, the real webhook, PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from app.core.models import GrantState
from app.slack.ids import Ids
from app.workflows.model import OnCall
from tests.support.bot import APPROVERS_CHANNEL, REQUESTER, Bot, default_workflows
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def quiet_bot(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver, fake_pagerduty: FakePagerDuty
) -> Callable[[bool], Bot]:
    fake_pagerduty.add_user("PALICE", "alice@example.com", "Alice Requester")
    fake_pagerduty.add_oncall("PALICE", "PPAY", "Payments Primary", 1, "SWEEK", "Payments Weekly")

    def start(announce: bool) -> Bot:
        (workflow,) = default_workflows(webhook.url)
        rule = OnCall(escalation_level=1, announce=announce)
        return bot_factory(
            workflows=[replace(workflow, auto_approve=rule)],
            pagerduty_api_token=fake_pagerduty.token,
            pagerduty_api_url=fake_pagerduty.base_url,
        )

    return start


def test_quiet_on_call_grant_posts_nothing_to_the_approvers(
    quiet_bot: Callable[[bool], Bot],
) -> None:
    bot = quiet_bot(False)

    response = bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")
    assert response.status_code == 200

    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant webhook")
    wait_until(lambda: bot.grants()[0].state == GrantState.ACTIVE, what="the grant recorded")
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert "because PagerDuty shows you on call" in dm.text()
    (request,) = bot.requests()
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert approved.detail["via"] == "on_call" and approved.detail["announced"] is False
    bot.sender.open_home(REQUESTER)
    home = bot.slack.wait_for("views.publish", user_id=REQUESTER)[0]
    assert "Orders DB (read-only)" in json.dumps(home.args["view"])

    grant_id = next(
        e["value"] for b in dm.blocks if b["type"] == "actions" for e in b["elements"]
        if e["action_id"] == Ids.GIVE_BACK
    )  # fmt: skip
    bot.sender.click(REQUESTER, Ids.GIVE_BACK, grant_id, channel_id="D0DM")
    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="the revocation")
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "You gave back" in c.text()
    )
    time.sleep(0.5)  # the outbox has had time to send anything else it would
    assert bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL) == []
    assert bot.slack.calls_to("chat.update") == []


def test_announced_on_call_grant_still_posts_its_fyi(quiet_bot: Callable[[bool], Bot]) -> None:
    bot = quiet_bot(True)

    bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")

    fyi = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert fyi.buttons() == [] and "Payments Primary" in fyi.text()
    (request,) = bot.requests()
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert "announced" not in approved.detail
