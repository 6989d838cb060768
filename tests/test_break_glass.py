"""Break-glass: a permitted person grants themself access at once with a mandatory reason; the
approvers' channel is alerted (@here or a user group), the audit log flags it, any approver
marks it Reviewed or revokes it, and an unreviewed grant is announced again. Through signed
Slack requests against the running bot, its scheduler, the webhook and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from app.core.models import GrantState
from app.slack.ids import Ids
from app.workflows.model import BreakGlass
from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    APPROVERS_CHANNEL,
    OUTSIDER,
    REQUESTER,
    Bot,
)
from tests.support.fake_slack import Call
from tests.support.wait import wait_until

RULE = BreakGlass(max_duration=timedelta(hours=1), who=[REQUESTER, "S0ONCALL"])


@pytest.fixture
def bot(bot_with: Callable[..., Bot]) -> Bot:
    return bot_with(break_glass=RULE)


def test_a_replayed_break_glass_command_grants_once(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    text = "break-glass orders-db 30m DB down"
    bot.sender.command(REQUESTER, text, trigger_id="1234.5678.glass")
    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant webhook")

    assert bot.sender.command(REQUESTER, text, trigger_id="1234.5678.glass").is_success
    wait_until(
        lambda: any("replayed submission" in r.getMessage() for r in caplog.records),
        what="the replay to be handled",
    )
    assert len(bot.requests()) == 1 and len(bot.grants()) == 1
    assert bot.audit_events().count("requested") == 1
    alerts = bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)
    assert len([c for c in alerts if "BREAK-GLASS" in c.text()]) == 1


def latest_message(bot: Bot, where: Callable[[Call], bool]) -> Call:
    """The latest post or update of the approvers' channel that `where` accepts."""

    def found() -> list[Call]:
        return [
            c
            for c in bot.slack.calls_to("chat.update", channel=APPROVERS_CHANNEL)
            + bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)
            if where(c)
        ]

    return wait_until(found, what="the approvers' message")[-1]


def test_break_glass_grants_at_once_and_alerts_the_approvers(bot: Bot) -> None:
    response = bot.sender.command(REQUESTER, "break-glass orders-db 30m DB down <!channel>")

    assert response.status_code == 200 and "Breaking glass" in response.text
    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant webhook")
    wait_until(lambda: bot.grants()[0].state == GrantState.ACTIVE, what="the grant recorded")
    (request,) = bot.requests()
    assert request.duration == timedelta(minutes=30) and request.decided_via == "break_glass"
    assert request.justification == "DB down <!channel>"
    events = {e.event: e for e in bot.audit(request.id)}
    assert events["requested"].detail["via"] == "break_glass"
    assert events["approved"].detail["via"] == "break_glass"
    assert events["approved"].detail["break_glass"] is True

    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert post.args["text"].startswith("🚨 <!here> BREAK-GLASS:")
    assert "Break-glass: DB down &lt;!channel&gt;" in post.text()  # the reason, escaped
    active = latest_message(bot, lambda c: "granted until" in c.text())
    assert active.buttons() == ["Reviewed", "Revoke"]
    assert "Not reviewed yet" in active.text()
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert "break-glass: the approvers have been alerted and will review it" in dm.text()

    bot.click(REQUESTER, Ids.REVIEW, request)  # not one's own
    own = bot.slack.wait_for("chat.postEphemeral", user=REQUESTER)[0]
    assert "can't review your own" in own.text()
    bot.click(APPROVER, Ids.REVIEW, request)

    reviewed = latest_message(bot, lambda c: "Reviewed by" in c.text())
    assert f"👀 Reviewed by <@{APPROVER}>." in reviewed.text()
    assert reviewed.buttons() == ["Revoke"]
    assert "break_glass_reviewed" in bot.audit_events(request.id)
    assert bot.requests()[0].reviewed_by == APPROVER

    grant = bot.grants()[0]
    bot.sender.click(APPROVER_2, Ids.GIVE_BACK, str(grant.id), channel_id=APPROVERS_CHANNEL)
    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="the revocation")
    assert bot.grants()[0].ended_by == APPROVER_2


def test_an_unreviewed_grant_is_announced_again_once(bot_with: Callable[..., Bot]) -> None:
    rule = BreakGlass(
        max_duration=timedelta(hours=1),
        who=[REQUESTER],
        notify="S0SRE",
        review_after=timedelta(seconds=1),
    )
    bot = bot_with(break_glass=rule)

    bot.sender.command(REQUESTER, "break-glass orders-db 15m payments are down")

    again = bot.slack.wait_for(
        "chat.postMessage",
        channel=APPROVERS_CHANNEL,
        where=lambda c: "still unreviewed" in c.text(),
        timeout=10,
    )[0]
    assert again.args["text"].startswith(f"🚨 <!subteam^S0SRE> <@{REQUESTER}>'s break-glass")
    assert again.args["reply_broadcast"] is True
    time.sleep(1.2)
    bot.runtime.sweep()
    later = [c for c in bot.slack.calls_to("chat.postMessage") if "still unreviewed" in c.text()]
    assert len(later) == 1
    (request,) = bot.requests()
    assert bot.audit_events(request.id).count("break_glass_reannounced") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("break-glass orders-db 2h down", "Break-glass access lasts at most 1 hour."),
        ("break-glass orders-db 30m", "Say why: a reason is mandatory."),
        ("break-glass orders-db down", "Say how long, like 30m or 1h."),
        ("break-glass billing 30m down", "Unknown resource"),
    ],
)
def test_bad_break_glass_is_refused_with_the_reason(bot: Bot, text: str, message: str) -> None:
    response = bot.sender.command(REQUESTER, text)

    assert response.status_code == 200
    assert "Break-glass needs" in response.text and message in response.text
    time.sleep(0.3)
    assert bot.requests() == [] and bot.webhook.attempts == []


def test_only_the_people_listed_may_break_glass(bot: Bot) -> None:
    bot.slack.usergroups["S0ONCALL"] = [APPROVER]  # listed through a user group
    bot.sender.command(OUTSIDER, "break-glass orders-db 30m I want in")

    refused = bot.slack.wait_for("chat.postMessage", channel=OUTSIDER)[0]
    assert "Break-glass refused" in refused.text() and "you are not listed" in refused.text()
    assert bot.requests() == [] and bot.webhook.attempts == []

    bot.sender.command(APPROVER, "break-glass orders-db 30m DB down")
    wait_until(lambda: bot.webhook.events_of("grant"), what="the group member's grant")


def test_without_a_break_glass_rule_it_is_refused(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()

    response = bot.sender.command(REQUESTER, "break-glass orders-db 30m DB down")

    assert "Orders DB (read-only) has no break-glass access." in response.text
    assert bot.requests() == []
