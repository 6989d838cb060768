"""Approve for less: an approver picks a shorter duration beside Approve; the grant lasts that
long and the requester is told. Through signed Slack requests against the running bot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from app.core.models import GrantState, RequestState
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, OUTSIDER, REQUESTER, Bot
from tests.support.wait import wait_until


def menu(post: Any) -> dict[str, Any] | None:
    return next(
        (
            e
            for b in post.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["type"] == "static_select"
        ),
        None,
    )


def test_approver_approves_a_shorter_duration(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, post = bot.request_access(duration=timedelta(hours=1))
    choices = menu(post)
    assert choices is not None and choices["placeholder"]["text"] == "Approve for less…"
    labels = [o["text"]["text"] for o in choices["options"]]
    assert labels == ["Approve for 1 second", "Approve for 15 minutes"]
    fifteen = choices["options"][1]["value"]

    response = bot.sender.choose(
        APPROVER,
        choices["action_id"],
        fifteen,
        channel_id=APPROVERS_CHANNEL,
        message_ts=request.approvers_message_ts,
    )

    assert response.status_code == 200
    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")
    (grant,) = bot.grants()
    assert grant.expires_at - grant.granted_at == timedelta(minutes=15)
    (event,) = bot.webhook.events_of("grant")
    expires = datetime.fromisoformat(event["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - grant.expires_at) < timedelta(seconds=1)
    (stored,) = bot.requests()
    assert stored.duration == timedelta(minutes=15)
    assert stored.asked_duration == timedelta(hours=1)
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert approved.actor == APPROVER
    assert approved.detail["duration_seconds"] == 900 and approved.detail["asked_seconds"] == 3600
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert "approved for 15 minutes, less than the 1 hour you asked for" in dm.text()
    update = bot.slack.wait_for(
        "chat.update", channel=APPROVERS_CHANNEL, where=lambda c: "granted until" in c.text()
    )[-1]
    assert f"Approved by <@{APPROVER}> for 15 minutes (asked 1 hour)" in update.text()
    assert menu(update) is None


def test_a_duration_that_is_not_shorter_is_refused(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, _ = bot.request_access(duration=timedelta(minutes=15))

    for forged in (f"{request.id}|3600", f"{request.id}|900", f"{request.id}|7", "junk"):
        bot.sender.choose(APPROVER, "approve_request_for", forged, channel_id=APPROVERS_CHANNEL)
    bot.sender.choose(
        OUTSIDER, "approve_request_for", f"{request.id}|1", channel_id=APPROVERS_CHANNEL
    )

    refusals = bot.slack.wait_for("chat.postEphemeral", user=APPROVER, count=4)
    said = [r.text() for r in refusals]  # in any order: clicks are handled in parallel
    assert sum("policy allows for this request are: 1 second" in t for t in said) == 3
    assert sum("not a duration" in t for t in said) == 1
    outsider = bot.slack.wait_for("chat.postEphemeral", user=OUTSIDER)[0]
    assert "not an approver" in outsider.text()
    (stored,) = bot.requests()
    assert stored.state == RequestState.PENDING and stored.duration == timedelta(minutes=15)
    assert stored.asked_duration is None and bot.grants() == []


def test_the_shortest_duration_offers_no_menu(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    _, post = bot.request_access(duration=timedelta(seconds=1))

    assert menu(post) is None and post.buttons() == ["Approve", "Deny"]


def test_a_workflow_can_turn_it_off(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(approve_for_less=False)
    request, post = bot.request_access(duration=timedelta(hours=1))
    assert menu(post) is None

    bot.sender.choose(
        APPROVER, "approve_request_for", f"{request.id}|900", channel_id=APPROVERS_CHANNEL
    )

    refusal = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "shorter durations the policy allows for this request are: none" in refusal.text()
    assert bot.requests()[0].state == RequestState.PENDING
