"""Stale requests escalate: nobody decided within `escalate_after`, so the request is re-posted
to `escalate_to` (a channel, or a user group called in the approvers' channel), once, with how
long it has waited. Through signed Slack requests against the running bot and its scheduler."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

from app.core.models import GrantState
from app.slack.ids import Ids
from app.workflows.model import ON_CALL_APPROVERS
from tests.support.bot import APPROVER, APPROVER_2, APPROVERS_CHANNEL, Bot
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.wait import wait_until

ESCALATION_CHANNEL = "CESCALATE"
WAITED = re.compile(r"Waiting (\d+) seconds? for a decision")


def test_a_stale_request_is_reposted_once_to_the_escalation_channel(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(escalate_after=timedelta(seconds=1), escalate_to=ESCALATION_CHANNEL)
    request, _ = bot.request_access()

    post = bot.slack.wait_for("chat.postMessage", channel=ESCALATION_CHANNEL)[0]

    waited = WAITED.search(post.text())
    assert waited and int(waited.group(1)) >= 1
    assert f"<#{APPROVERS_CHANNEL}>" in post.text() and "INC-1234" in post.text()
    assert post.buttons() == ["Approve", "Deny"]
    (row,) = [e for e in bot.audit(request.id) if e.event == "escalated"]
    assert row.detail["escalated_to"] == ESCALATION_CHANNEL
    assert row.detail["waited_seconds"] >= 1
    assert bot.requests()[0].escalated_at is not None

    time.sleep(1.2)
    bot.runtime.sweep()  # a later sweep (or another process) escalates nothing again
    assert len(bot.slack.calls_to("chat.postMessage", channel=ESCALATION_CHANNEL)) == 1
    assert [e.event for e in bot.audit(request.id)].count("escalated") == 1

    approve = next(
        e for b in post.blocks if b["type"] == "actions" for e in b["elements"]
        if e.get("action_id") == Ids.APPROVE
    )  # fmt: skip
    bot.sender.click(APPROVER, Ids.APPROVE, approve["value"], channel_id=ESCALATION_CHANNEL)
    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")


def test_a_user_group_is_called_in_the_approvers_thread(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(escalate_after=timedelta(seconds=1), escalate_to="SBACKUPS")
    bot.request_access()

    call = bot.slack.wait_for(
        "chat.postMessage", channel=APPROVERS_CHANNEL, where=lambda c: "subteam" in c.text()
    )[0]

    assert call.args["text"].startswith("⏫ <!subteam^SBACKUPS>")
    assert re.search(r"it has waited \d+ seconds? for a decision", call.args["text"])
    assert call.args["thread_ts"] == bot.requests()[0].approvers_message_ts
    assert call.args["reply_broadcast"] is True


def test_a_request_decided_in_time_does_not_escalate(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(escalate_after=timedelta(seconds=1), escalate_to=ESCALATION_CHANNEL)
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.DENY, request)
    wait_until(lambda: bot.requests()[0].state == "denied", what="the denial")

    time.sleep(1.5)
    bot.runtime.sweep()

    assert bot.slack.calls_to("chat.postMessage", channel=ESCALATION_CHANNEL) == []
    assert "escalated" not in bot.audit_events(request.id)


def test_the_approvers_on_call_are_sent_the_request(
    bot_with: Callable[..., Bot], fake_pagerduty: FakePagerDuty
) -> None:
    fake_pagerduty.add_user("PBOB", "bob@example.com", "Bob Approver")
    fake_pagerduty.add_user("PCAROL", "carol@example.com", "Carol Approver")
    fake_pagerduty.add_oncall("PBOB", "PSRE", "SRE Primary", 1, "SWEEK", "SRE Weekly")
    settings = {
        "pagerduty_api_token": fake_pagerduty.token,
        "pagerduty_api_url": fake_pagerduty.base_url,
    }
    bot = bot_with(settings, escalate_after=timedelta(seconds=1), escalate_to=ON_CALL_APPROVERS)
    request, _ = bot.request_access()

    dm = bot.slack.wait_for("chat.postMessage", channel=APPROVER)[0]

    assert WAITED.search(dm.text()) and dm.buttons() == ["Approve", "Deny"]
    (row,) = [e for e in bot.audit(request.id) if e.event == "escalated"]
    assert row.detail["escalated_to"] == "oncall"
    assert row.detail["on_call_approvers"] == [APPROVER]  # not Carol, not the requester
    assert bot.slack.calls_to("chat.postMessage", channel=APPROVER_2) == []


def test_no_approver_on_call_is_said_in_the_thread(
    bot_with: Callable[..., Bot], fake_pagerduty: FakePagerDuty
) -> None:
    settings = {
        "pagerduty_api_token": fake_pagerduty.token,
        "pagerduty_api_url": fake_pagerduty.base_url,
    }
    bot = bot_with(settings, escalate_after=timedelta(seconds=1), escalate_to=ON_CALL_APPROVERS)
    bot.request_access()

    note = bot.slack.wait_for(
        "chat.postMessage", channel=APPROVERS_CHANNEL, where=lambda c: "no approver" in c.text()
    )[0]

    assert "no approver is on call in PagerDuty to escalate to" in note.text()
    assert note.args["reply_broadcast"] is True
