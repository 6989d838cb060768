"""Who may decide, and that each request is decided exactly once."""

from __future__ import annotations

import threading

import httpx

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from tests.support.bot import APPROVER, APPROVER_2, OUTSIDER, REQUESTER, Bot
from tests.support.wait import wait_until


def test_denied_request_tells_the_requester_who_denied(bot: Bot) -> None:
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.DENY, request)

    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "denied" in c.text()
    )
    assert f"<@{APPROVER}>" in dm[0].text() and "Orders DB (read-only)" in dm[0].text()
    update = bot.slack.wait_for("chat.update", ts=request.approvers_message_ts)[-1]
    assert f"Denied by <@{APPROVER}>" in update.text() and update.buttons() == []
    (stored,) = bot.requests()
    assert stored.state == RequestState.DENIED and stored.decided_by == APPROVER
    assert bot.grants() == [] and bot.webhook.attempts == []
    assert bot.audit_events(request.id) == ["requested", "denied"]


def test_requester_cannot_approve_their_own_request_even_as_an_approver(bot: Bot) -> None:
    request, _ = bot.request_access(REQUESTER)  # REQUESTER is also listed as an approver

    bot.click(REQUESTER, Ids.APPROVE, request)

    ephemeral = bot.slack.wait_for("chat.postEphemeral", user=REQUESTER)[0]
    assert "can't approve" in ephemeral.text() and "your own request" in ephemeral.text()
    assert ephemeral.args["channel"] == request.approvers_channel
    assert bot.requests()[0].state == RequestState.PENDING
    assert bot.grants() == [] and bot.slack.calls_to("chat.update") == []
    assert bot.audit_events(request.id) == ["requested"]


def test_outsider_cannot_approve_or_deny(bot: Bot) -> None:
    request, _ = bot.request_access()

    bot.click(OUTSIDER, Ids.APPROVE, request)
    bot.click(OUTSIDER, Ids.DENY, request)

    ephemerals = bot.slack.wait_for("chat.postEphemeral", user=OUTSIDER, count=2)
    assert all("can't approve" in e.text() for e in ephemerals)
    assert "not an approver" in ephemerals[0].text()
    assert bot.requests()[0].state == RequestState.PENDING
    assert bot.grants() == [] and bot.webhook.attempts == []


def test_approve_after_deny_changes_nothing(bot: Bot) -> None:
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.DENY, request)
    wait_until(lambda: bot.requests()[0].state == RequestState.DENIED, what="the denial")

    bot.click(APPROVER_2, Ids.APPROVE, request)

    ephemeral = bot.slack.wait_for("chat.postEphemeral", user=APPROVER_2)[0]
    assert f"already denied by <@{APPROVER}>" in ephemeral.text()
    assert bot.requests()[0].state == RequestState.DENIED
    assert bot.grants() == [] and bot.webhook.attempts == []


def test_simultaneous_approvals_yield_one_decision_and_one_grant(bot: Bot) -> None:
    request, _ = bot.request_access()
    clicks = [(APPROVER, Ids.APPROVE), (APPROVER_2, Ids.APPROVE), (APPROVER, Ids.DENY)] * 3
    barrier = threading.Barrier(len(clicks))
    responses: list[httpx.Response] = []

    def click(user: str, action: str) -> None:
        barrier.wait()
        responses.append(
            bot.sender.click(
                user,
                action,
                str(request.id),
                channel_id=request.approvers_channel,
                message_ts=request.approvers_message_ts,
            )
        )

    threads = [threading.Thread(target=click, args=pair) for pair in clicks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in responses] == [200] * len(clicks)
    bot.slack.wait_for("chat.postEphemeral", count=len(clicks) - 1)
    (stored,) = bot.requests()
    decisions = [e for e in bot.audit_events(request.id) if e in ("approved", "denied")]
    assert len(decisions) == 1
    if stored.state == RequestState.APPROVED:
        wait_until(
            lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant"
        )
        assert len(bot.grants()) == 1 and len(bot.webhook.events_of("grant")) == 1
    else:
        assert bot.grants() == []


def test_click_on_an_unknown_request_is_refused(bot: Bot) -> None:
    response = bot.sender.click(APPROVER, Ids.APPROVE, "not-a-request-id", channel_id="CAPPROVALS")

    assert response.status_code == 200
    ephemeral = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "does not exist" in ephemeral.text()
    assert bot.requests() == [] and bot.grants() == []
