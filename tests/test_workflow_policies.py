"""Workflows as code, through the running bot: approvers, quorum, hooks and overrides."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from app.workflows import AccessRequestInfo, Decision, Resource
from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    APPROVERS_CHANNEL,
    OUTSIDER,
    REQUESTER,
    Bot,
    default_workflows,
)
from tests.support.fake_slack import FakeSlack
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver


def wait_for_state(bot: Bot, state: RequestState) -> None:
    wait_until(lambda: bot.requests() and bot.requests()[-1].state == state, what=f"state {state}")


# -- who approves ---------------------------------------------------------------------------


def test_approvers_given_by_email(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(approvers=["carol@example.com"])
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)  # bob is not carol
    bot.slack.wait_for("chat.postEphemeral", user=APPROVER)
    bot.click(APPROVER_2, Ids.APPROVE, request)  # carol@example.com

    wait_for_state(bot, RequestState.APPROVED)
    assert bot.requests()[0].decided_by == APPROVER_2
    assert bot.slack.calls_to("users.lookupByEmail", email="carol@example.com")


def test_approvers_given_by_user_group(bot_with: Callable[..., Bot], fake_slack: FakeSlack) -> None:
    fake_slack.usergroups["S0ONCALLLEADS"] = [APPROVER_2]
    bot = bot_with(approvers=["S0ONCALLLEADS"])
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)
    refusal = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    bot.click(APPROVER_2, Ids.APPROVE, request)

    assert "not an approver" in refusal.text()
    wait_for_state(bot, RequestState.APPROVED)


def test_without_approvers_the_channel_members_approve_and_leaving_takes_the_right_away(
    bot_with: Callable[..., Bot], fake_slack: FakeSlack
) -> None:
    fake_slack.channel_members[APPROVERS_CHANNEL] = ["UBOT", APPROVER, APPROVER_2, REQUESTER]
    cache = 1.0
    bot = bot_with(settings={"approvers_cache_seconds": cache}, approvers=[])
    first, _ = bot.request_access()
    second, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, first)  # Bob approves while a member: the cache fills
    wait_until(lambda: bot.requests()[0].state == RequestState.APPROVED, what="first approved")
    fake_slack.channel_members[APPROVERS_CHANNEL].remove(APPROVER)  # Bob leaves the channel
    left = time.monotonic()
    time.sleep(cache + 0.2)  # APPROVERS_CACHE_SECONDS: then the channel is asked again

    bot.click(APPROVER, Ids.APPROVE, second)
    refusal = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "not an approver" in refusal.text() and time.monotonic() - left < cache + 5
    assert bot.requests()[1].state == RequestState.PENDING
    bot.click(APPROVER_2, Ids.APPROVE, second)
    wait_until(lambda: bot.requests()[1].state == RequestState.APPROVED, what="Carol approves")


def test_the_approvers_cache_spares_slack_within_its_lifetime(
    bot_with: Callable[..., Bot], fake_slack: FakeSlack
) -> None:
    fake_slack.channel_members[APPROVERS_CHANNEL] = ["UBOT", APPROVER, APPROVER_2, REQUESTER]
    bot = bot_with(settings={"approvers_cache_seconds": 600}, approvers=[])
    first, _ = bot.request_access()
    second, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, first)
    wait_until(lambda: bot.requests()[0].state == RequestState.APPROVED, what="first approved")
    asked = len(fake_slack.calls_to("conversations.members"))

    bot.click(APPROVER_2, Ids.APPROVE, second)
    wait_until(lambda: bot.requests()[1].state == RequestState.APPROVED, what="second approved")

    assert len(fake_slack.calls_to("conversations.members")) == asked


def test_directory_failure_refuses_the_click(
    bot_with: Callable[..., Bot], fake_slack: FakeSlack
) -> None:
    bot = bot_with(approvers=["S0MISSING"])
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)

    refusal = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "no_such_subteam" in refusal.text()
    assert bot.requests()[0].state == RequestState.PENDING


# -- quorum ---------------------------------------------------------------------------------


def test_two_approvals_are_needed_and_the_tally_is_shown(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(required_approvals=2)
    request, post = bot.request_access()
    assert "0 of 2 approvals" in post.text()
    dm = bot.slack.wait_for("chat.postMessage", channel=REQUESTER)[0]
    assert "needs 2 approvals" in dm.text()

    bot.click(APPROVER, Ids.APPROVE, request)
    tally = bot.slack.wait_for("chat.update", where=lambda c: "1 of 2 approvals" in c.text())[0]
    assert f"<@{APPROVER}>" in tally.text() and tally.buttons() == ["Approve", "Deny"]
    assert bot.requests()[0].state == RequestState.PENDING and bot.webhook.attempts == []

    bot.click(APPROVER, Ids.APPROVE, request)  # the same approver again does not count
    again = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "already approved" in again.text()
    bot.click(REQUESTER, Ids.APPROVE, request)  # the requester never counts
    bot.slack.wait_for("chat.postEphemeral", user=REQUESTER)
    assert bot.requests()[0].state == RequestState.PENDING

    bot.click(APPROVER_2, Ids.APPROVE, request)

    granted = wait_until(lambda: bot.webhook.events_of("grant"), what="the grant")
    assert granted[0]["approved_by"] == f"{APPROVER},{APPROVER_2}"
    wait_until(lambda: bot.grants()[0].state == GrantState.ACTIVE, what="the grant recorded")
    assert bot.audit_events(request.id)[:4] == [
        "requested",
        "approval_recorded",
        "approved",
        "granted",
    ]
    final = bot.slack.wait_for("chat.update", where=lambda c: "granted until" in c.text())[-1]
    assert f"Approved by <@{APPROVER}>, <@{APPROVER_2}>" in final.text()


def test_one_deny_ends_a_request_that_needs_several_approvals(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(required_approvals=2)
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, request)
    bot.slack.wait_for("chat.update", where=lambda c: "1 of 2" in c.text())

    bot.click(APPROVER_2, Ids.DENY, request)

    wait_for_state(bot, RequestState.DENIED)
    assert bot.grants() == []


# -- hooks ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, AccessRequestInfo]] = []

    def hook(self, name: str, result: Any = None) -> Callable[[AccessRequestInfo], Any]:
        def record(request: AccessRequestInfo) -> Any:
            self.calls.append((name, request))
            if isinstance(result, Exception):
                raise result
            return result

        return record

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def test_hook_approval_grants_without_a_click_and_says_why(bot_with: Callable[..., Bot]) -> None:
    recorder = Recorder()
    bot = bot_with(
        on_request=recorder.hook("on_request", Decision.approve("read-only and short: fine")),
        after_grant=recorder.hook("after_grant"),
    )

    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="x", duration_seconds=900
    )

    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant")
    wait_until(lambda: "after_grant" in recorder.names(), what="after_grant")
    _, info = recorder.calls[0]
    assert info.requester.slack_id == REQUESTER and info.requester.email == "alice@example.com"
    assert info.resource.id == "orders-db" and info.duration == timedelta(minutes=15)
    assert info.justification == "x" and info.on_call is None and info.now.tzinfo is not None
    fyi = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert fyi.buttons() == [] and "read-only and short: fine" in fyi.text()
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted" in c.text()
    )
    assert "approved automatically by policy: read-only and short: fine" in dm[0].text()
    approved = next(e for e in bot.audit() if e.event == "approved")
    assert (
        approved.detail["via"] == "policy"
        and approved.detail["reason"] == "read-only and short: fine"
    )
    _, granted_info = recorder.calls[-1]
    assert granted_info.expires_at is not None


def test_hook_denial_tells_the_requester_why(bot_with: Callable[..., Bot]) -> None:
    recorder = Recorder()
    bot = bot_with(
        on_request=recorder.hook("on_request", Decision.deny("no production access on Fridays")),
        after_deny=recorder.hook("after_deny"),
    )

    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="x", duration_seconds=900
    )

    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "denied" in c.text()
    )
    assert "denied by the workflow's policy: no production access on Fridays" in dm[0].text()
    fyi = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert fyi.buttons() == [] and "Denied by the workflow's policy" in fyi.text()
    wait_until(lambda: "after_deny" in recorder.names(), what="after_deny")
    assert bot.requests()[0].state == RequestState.DENIED and bot.grants() == []
    denied = next(e for e in bot.audit() if e.event == "denied")
    assert denied.detail["reason"] == "no production access on Fridays"


def test_hook_routing_shows_its_reason_to_requester_and_approvers(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(on_request=lambda request: Decision.route("first request this month"))

    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="x", duration_seconds=900
    )

    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert post.buttons() == ["Approve", "Deny"] and "first request this month" in post.text()
    dm = bot.slack.wait_for("chat.postMessage", channel=REQUESTER)[0]
    assert "first request this month" in dm.text()


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (
            RuntimeError("database of rules unreachable"),
            "RuntimeError: database of rules unreachable",
        ),
        ("yes", "returned 'yes', not a Decision"),
    ],
    ids=["raises", "returns-junk"],
)
def test_a_broken_hook_routes_to_humans_and_is_reported(
    bot_with: Callable[..., Bot], result: Any, shown: str
) -> None:
    recorder = Recorder()
    bot = bot_with(on_request=recorder.hook("on_request", result))

    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="x", duration_seconds=900
    )

    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert post.buttons() == ["Approve", "Deny"]
    assert shown in post.text() and "an approver must decide" in post.text()
    time.sleep(0.2)
    assert bot.requests()[0].state == RequestState.PENDING and bot.grants() == []


def test_after_hooks_run_and_a_failing_one_is_reported(bot_with: Callable[..., Bot]) -> None:
    recorder = Recorder()
    bot = bot_with(
        after_grant=recorder.hook("after_grant", ValueError("ticket system down")),
        after_revoke=recorder.hook("after_revoke"),
    )
    request, _ = bot.request_access(duration=timedelta(seconds=1))

    bot.click(APPROVER, Ids.APPROVE, request)

    note = bot.slack.wait_for(
        "chat.postMessage",
        channel=APPROVERS_CHANNEL,
        where=lambda c: "after_grant hook failed" in c.text(),
    )[0]
    assert "ValueError: ticket system down" in note.text()
    assert note.args["thread_ts"] == request.approvers_message_ts
    wait_until(lambda: "after_revoke" in recorder.names(), what="after_revoke at expiry")
    _, revoked = recorder.calls[-1]
    assert revoked.reason == "expired" and revoked.approved_by == (APPROVER,)
    assert "hook_failed" in bot.audit_events(request.id)
    assert bot.grants()[0].state == GrantState.REVOKED


# -- per-resource overrides ---------------------------------------------------------------


def test_resource_overrides_durations_and_approvers(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    (base,) = default_workflows(webhook.url)
    special = Resource(
        id="billing-db",
        name="Billing DB",
        grant=base.resources[0].grant,
        durations=[timedelta(minutes=5)],
        approvers=[APPROVER_2],
    )
    bot = bot_with(resources=[*base.resources, special])

    refused = bot.sender.submit_request(
        REQUESTER, resource="billing-db", justification="x", duration_seconds=900
    )
    assert "Billing DB can be requested for: 5 minutes" in refused.text
    request, _ = bot.request_access(resource="billing-db", duration=timedelta(minutes=5))
    bot.click(APPROVER, Ids.APPROVE, request)
    bot.slack.wait_for("chat.postEphemeral", user=APPROVER)
    bot.click(APPROVER_2, Ids.APPROVE, request)

    wait_for_state(bot, RequestState.APPROVED)


def test_choosing_a_resource_offers_its_own_durations(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    (base,) = default_workflows(webhook.url)
    special = Resource(
        id="billing-db",
        name="Billing DB",
        grant=base.resources[0].grant,
        durations=[timedelta(minutes=5)],
    )
    bot = bot_with(resources=[*base.resources, special])
    bot.sender.command(REQUESTER)
    view = bot.slack.wait_for("views.open")[0].args["view"]
    assert view["blocks"][0]["dispatch_action"] is True

    bot.sender.payload(
        {
            "type": "block_actions",
            "team": {"id": "T0TEAM"},
            "user": {"id": REQUESTER, "team_id": "T0TEAM"},
            "api_app_id": "A0APP",
            "token": "legacy",
            "trigger_id": "t",
            "container": {"type": "view", "view_id": "V0VIEW"},
            "view": {**view, "id": "V0VIEW", "hash": "h1", "state": {"values": {}}},
            "actions": [
                {
                    "type": "static_select",
                    "action_id": Ids.RESOURCE_SELECT,
                    "block_id": Ids.RESOURCE_BLOCK,
                    "selected_option": {
                        "text": {"type": "plain_text", "text": "Billing DB"},
                        "value": "billing-db",
                    },
                }
            ],
        }
    )

    update = bot.slack.wait_for("views.update")[0]
    durations = update.args["view"]["blocks"][2]["element"]["options"]
    assert [o["text"]["text"] for o in durations] == ["5 minutes"]
    assert update.args["view_id"] == "V0VIEW" and update.args["hash"] == "h1"


def test_outsider_is_still_refused_with_a_hook(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(on_request=lambda request: None)
    request, _ = bot.request_access()

    bot.click(OUTSIDER, Ids.APPROVE, request)

    assert "not an approver" in bot.slack.wait_for("chat.postEphemeral", user=OUTSIDER)[0].text()
