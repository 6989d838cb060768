"""OnCall(end_with_shift=True): an on-call grant ends at the earlier of the chosen duration and
the end of the on-call entry PagerDuty returned; the DM says which applies. End to end: signed
Slack requests, the real PagerDuty client against the fake, the real webhook, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.core.models import GrantState
from app.workflows.model import OnCall
from tests.support.bot import REQUESTER, Bot, default_workflows
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def shift_bot(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver, fake_pagerduty: FakePagerDuty
) -> Callable[..., Bot]:
    fake_pagerduty.add_user("PALICE", "alice@example.com", "Alice Requester")

    def start(*, shift_end: datetime | None, end_with_shift: bool = True) -> Bot:
        if shift_end is None:  # directly on the escalation policy: permanent, no `end`
            fake_pagerduty.add_oncall("PALICE", "PPAY", "Payments Primary", 1)
        else:
            fake_pagerduty.add_oncall(
                "PALICE", "PPAY", "Payments Primary", 1, "SWEEK", "Weekly", end=shift_end
            )
        (workflow,) = default_workflows(webhook.url)
        rule = OnCall(escalation_level=1, end_with_shift=end_with_shift)
        return bot_factory(
            workflows=[replace(workflow, auto_approve=rule)],
            pagerduty_api_token=fake_pagerduty.token,
            pagerduty_api_url=fake_pagerduty.base_url,
        )

    return start


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)  # PagerDuty's times are to the second


def granted_dm(bot: Bot) -> str:
    return bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0].text()


def test_access_ends_with_a_shift_that_ends_first(shift_bot: Callable[..., Bot]) -> None:
    shift_end = whole_second(datetime.now(UTC) + timedelta(seconds=4))
    bot = shift_bot(shift_end=shift_end)

    bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")

    (grant_event,) = wait_until(lambda: bot.webhook.events_of("grant"), what="the grant")
    assert datetime.fromisoformat(grant_event["expires_at"]) == shift_end  # what the target hears
    wait_until(lambda: bot.grants()[0].state == GrantState.ACTIVE, what="the grant recorded")
    (grant,) = bot.grants()
    assert grant.expires_at == shift_end
    assert "It ends with your on-call shift, sooner than the 15 minutes you chose." in (
        granted_dm(bot)
    )
    (request,) = bot.requests()
    approved = next(e for e in bot.audit(request.id) if e.event == "approved")
    assert datetime.fromisoformat(approved.detail["not_after"]) == shift_end

    revoked = wait_until(lambda: bot.webhook.events_of("revoke"), timeout=15, what="the revoke")
    assert len(revoked) == 1
    assert datetime.now(UTC) - shift_end < timedelta(seconds=5)  # at the shift's end, not 15m


def test_a_longer_shift_keeps_the_chosen_duration(shift_bot: Callable[..., Bot]) -> None:
    shift_end = whole_second(datetime.now(UTC) + timedelta(hours=2))
    bot = shift_bot(shift_end=shift_end)

    bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")

    wait_until(lambda: bot.grants() and bot.grants()[0].expires_at, what="the grant recorded")
    (grant,) = bot.grants()
    assert grant.expires_at - grant.granted_at == timedelta(minutes=15)
    assert "It lasts the 15 minutes you chose; your on-call shift ends later" in granted_dm(bot)


def test_a_permanent_entry_keeps_the_chosen_duration(shift_bot: Callable[..., Bot]) -> None:
    bot = shift_bot(shift_end=None)

    bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")

    wait_until(lambda: bot.grants() and bot.grants()[0].expires_at, what="the grant recorded")
    (grant,) = bot.grants()
    assert grant.expires_at - grant.granted_at == timedelta(minutes=15)
    assert bot.requests()[0].not_after is None
    assert "on-call shift" not in granted_dm(bot)


def test_without_the_option_the_shift_does_not_matter(shift_bot: Callable[..., Bot]) -> None:
    bot = shift_bot(shift_end=datetime.now(UTC) + timedelta(minutes=5), end_with_shift=False)

    bot.sender.command(REQUESTER, "orders-db 15m INC-99 payments down")

    wait_until(lambda: bot.grants() and bot.grants()[0].expires_at, what="the grant recorded")
    (grant,) = bot.grants()
    assert grant.expires_at - grant.granted_at == timedelta(minutes=15)
    assert "on-call shift" not in granted_dm(bot)
