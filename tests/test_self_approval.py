"""Opt-in self-approval: `allow_self_approval=True` on a workflow or a resource lets the
requester's own Approve count, audited as such. Off by default. Through signed Slack clicks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from tests.support.bot import (
    APPROVER,
    APPROVERS_CHANNEL,
    OUTSIDER,
    REQUESTER,
    Bot,
    default_workflows,
)
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver


def test_requester_approves_their_own_request_when_the_workflow_allows(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(allow_self_approval=True)  # REQUESTER is one of the approvers
    request, _ = bot.request_access()

    bot.click(REQUESTER, Ids.APPROVE, request)

    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")
    (grant_event,) = bot.webhook.events_of("grant")
    assert grant_event["approved_by"] == REQUESTER
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert approved.actor == REQUESTER and approved.detail["self_approved"] is True
    update = bot.slack.wait_for(
        "chat.update", channel=APPROVERS_CHANNEL, where=lambda c: "granted until" in c.text()
    )[-1]
    assert f"Approved by <@{REQUESTER}> (their own approval)" in update.text()
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert "you approved it yourself, as the policy allows" in dm.text()


def test_a_resource_may_allow_it_alone_and_another_forbid_it(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    (workflow,) = default_workflows(webhook.url)
    low = replace(workflow.resources[0], id="wiki", name="Wiki", allow_self_approval=True)
    high = replace(workflow.resources[0], allow_self_approval=False)
    bot = bot_with(allow_self_approval=True, resources=[high, low])

    orders, _ = bot.request_access(resource="orders-db")
    bot.click(REQUESTER, Ids.APPROVE, orders)
    ephemeral = bot.slack.wait_for("chat.postEphemeral", user=REQUESTER)[0]
    assert "it is your own request" in ephemeral.text()

    wiki, _ = bot.request_access(resource="wiki")
    bot.click(REQUESTER, Ids.APPROVE, wiki)
    wait_until(lambda: bot.grant_of(wiki), what="the wiki grant")
    states = {r.resource_id: r.state for r in bot.requests()}
    assert states == {"orders-db": RequestState.PENDING, "wiki": RequestState.APPROVED}


def test_own_approval_counts_once_toward_a_quorum(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(allow_self_approval=True, required_approvals=2)
    request, _ = bot.request_access()

    bot.click(REQUESTER, Ids.APPROVE, request)
    recorded = wait_until(
        lambda: [e for e in bot.audit(request.id) if e.event == "approval_recorded"],
        what="the first approval",
    )
    assert recorded[0].detail["self_approved"] is True
    assert bot.requests()[0].state == RequestState.PENDING
    bot.click(REQUESTER, Ids.APPROVE, request)  # twice is still one
    bot.slack.wait_for("chat.postEphemeral", user=REQUESTER)
    assert bot.requests()[0].state == RequestState.PENDING

    bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(lambda: bot.grant_of(request), what="the grant")
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert approved.actor == APPROVER and "self_approved" not in approved.detail
    assert approved.detail["approvers"] == [REQUESTER, APPROVER]


def test_never_for_a_requester_who_is_no_approver(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(allow_self_approval=True)
    theirs, _ = bot.request_access(OUTSIDER)  # OUTSIDER is no approver

    bot.click(OUTSIDER, Ids.APPROVE, theirs)

    ephemeral = bot.slack.wait_for("chat.postEphemeral", user=OUTSIDER)[0]
    assert "not an approver" in ephemeral.text()
    assert bot.requests()[0].state == RequestState.PENDING and bot.grants() == []
