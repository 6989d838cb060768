"""What people do with access once they have it: give back, extend, cancel, App Home, reminders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.core.models import AccessRequest, Grant, GrantState, RequestState
from app.slack.ids import Ids
from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    APPROVERS_CHANNEL,
    OUTSIDER,
    REQUESTER,
    Bot,
    insert_active_grant,
)
from tests.support.wait import wait_until


def granted(bot: Bot, duration: timedelta = timedelta(minutes=15)) -> tuple[AccessRequest, Grant]:
    request, _ = bot.request_access(duration=duration)
    bot.click(APPROVER, Ids.APPROVE, request)
    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.ACTIVE and g, what="grant"
    )
    return bot.requests()[-1], grant


def dm_buttons(bot: Bot, where: str) -> dict[str, str]:
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: where in c.text()
    )[-1]
    return {
        e["text"]["text"]: e["value"]
        for b in dm.blocks
        if b["type"] == "actions"
        for e in b["elements"]
    }


# -- give back early ------------------------------------------------------------------------


def test_requester_gives_access_back_from_the_grant_dm(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, _grant = granted(bot)
    buttons = dm_buttons(bot, "granted until")
    assert set(buttons) == {"Extend", "Give back access"}

    bot.sender.click(REQUESTER, Ids.GIVE_BACK, buttons["Give back access"], channel_id="D0DM")

    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="the revocation")
    assert len(bot.webhook.events_of("revoke")) == 1
    (ended,) = bot.grants()
    assert ended.state == GrantState.REVOKED and ended.end_reason == "revoked"
    assert ended.ended_by == REQUESTER
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "You gave back" in c.text()
    )
    note = bot.slack.wait_for(
        "chat.postMessage", channel=APPROVERS_CHANNEL, where=lambda c: "gave back" in c.text()
    )[0]
    assert note.args["thread_ts"] == request.approvers_message_ts
    update_ = bot.slack.wait_for("chat.update", where=lambda c: "Access revoked by" in c.text())[-1]
    assert update_.buttons() == []
    events = bot.audit(request.id)
    revoke = [e for e in events if e.event in ("revoke_requested", "revoked")]
    assert [(e.event, e.actor) for e in revoke] == [
        ("revoke_requested", REQUESTER),
        ("revoked", REQUESTER),
    ]


def test_approver_revokes_from_the_approvers_message_and_outsiders_cannot(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with()
    _request, grant = granted(bot)
    message = bot.slack.wait_for("chat.update", where=lambda c: "granted until" in c.text())[-1]
    assert message.buttons() == ["Revoke"]

    bot.sender.click(OUTSIDER, Ids.GIVE_BACK, str(grant.id), channel_id=APPROVERS_CHANNEL)
    refusal = bot.slack.wait_for("chat.postEphemeral", user=OUTSIDER)[0]
    assert "can't revoke this" in refusal.text()
    assert bot.grants()[0].state == GrantState.ACTIVE

    bot.sender.click(APPROVER_2, Ids.GIVE_BACK, str(grant.id), channel_id=APPROVERS_CHANNEL)

    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="revocation")
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "revoked by" in c.text()
    )
    assert f"<@{APPROVER_2}>" in dm[0].text()
    assert bot.grants()[0].ended_by == APPROVER_2


def test_revoking_twice_says_it_is_already_revoked(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    _, grant = granted(bot)
    bot.sender.click(REQUESTER, Ids.GIVE_BACK, str(grant.id), channel_id="D0DM")
    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="revocation")

    bot.sender.click(REQUESTER, Ids.GIVE_BACK, str(grant.id), channel_id="D0DM")

    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "nothing to revoke" in c.text()
    )
    assert len(bot.webhook.events_of("revoke")) == 1


# -- extend ---------------------------------------------------------------------------------


def test_extension_within_max_duration_goes_through_the_approvers(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(max_duration=timedelta(minutes=45))
    request, grant = granted(bot)
    first_expiry = grant.expires_at
    assert first_expiry is not None

    bot.sender.click(REQUESTER, Ids.EXTEND, str(grant.id), channel_id="D0DM")

    modal = bot.slack.wait_for("views.open")[-1].args["view"]
    assert modal["callback_id"] == Ids.EXTENSION_MODAL
    choices = [o["text"]["text"] for o in modal["blocks"][1]["element"]["options"]]
    assert choices == ["1 second", "15 minutes"]  # 1 hour would pass the 45-minute maximum

    response = bot.sender.submit_extension(
        REQUESTER, str(grant.id), duration_seconds=900, justification="migration runs long"
    )
    assert response.status_code == 200 and response.content == b""
    post = bot.slack.wait_for(
        "chat.postMessage", channel=APPROVERS_CHANNEL, where=lambda c: "more on" in c.text()
    )[0]
    assert "asks for 15 minutes more on Orders DB (read-only)" in post.text()
    assert post.buttons() == ["Approve", "Deny"]
    extension = wait_until(
        lambda: next(
            (r for r in bot.requests() if r.kind == "extension" and r.approvers_message_ts), None
        ),
        what="the stored extension request",
    )

    bot.click(APPROVER_2, Ids.APPROVE, extension)

    wait_until(
        lambda: bot.grants()[0].expires_at == first_expiry + timedelta(minutes=15),
        what="new expiry",
    )
    regrant = bot.webhook.events_of("grant")[-1]
    assert regrant["expires_at"].startswith(
        (first_expiry + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
    )
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "now lasts until" in c.text()
    )
    assert "extended by 15 minutes" in dm[0].text()
    assert "extended" in bot.audit_events(request.id)
    bot.slack.wait_for(
        "chat.update", ts=request.approvers_message_ts, where=lambda c: "(extended)" in c.text()
    )


def test_extension_beyond_max_duration_is_refused_and_changes_nothing(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(max_duration=timedelta(minutes=20))
    _, grant = granted(bot)

    response = bot.sender.submit_extension(
        REQUESTER, str(grant.id), duration_seconds=900, justification="more please"
    )

    answer = json.loads(response.content)
    assert answer["response_action"] == "errors"
    assert "Choose one of: 1 second" in answer["errors"][Ids.DURATION_BLOCK]
    time.sleep(0.2)
    assert [r.kind for r in bot.requests()] == ["access"]
    assert bot.grants()[0].expires_at == grant.expires_at


def test_when_no_extension_fits_the_extend_button_says_so(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(max_duration=timedelta(minutes=15))
    _, grant = granted(bot)

    bot.sender.click(REQUESTER, Ids.EXTEND, str(grant.id), channel_id="D0DM")

    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "at most" in c.text()
    )
    assert "already lasts 15 minutes; the policy allows at most 15 minutes in all" in dm[0].text()
    assert bot.slack.calls_to("views.open") == []


def test_only_the_holder_can_extend(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    _, grant = granted(bot)

    response = bot.sender.submit_extension(
        APPROVER, str(grant.id), duration_seconds=900, justification="me too"
    )

    assert "Only the person who holds this access can extend it" in response.text


# -- cancel and pending expiry ----------------------------------------------------------------


def test_requester_cancels_a_pending_request(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, _ = bot.request_access()
    buttons = dm_buttons(bot, "sent to the approvers")

    bot.sender.click(REQUESTER, Ids.CANCEL, buttons["Cancel request"], channel_id="D0DM")

    wait_until(lambda: bot.requests()[0].state == RequestState.CANCELLED, what="cancellation")
    update_ = bot.slack.wait_for("chat.update", where=lambda c: "Withdrawn" in c.text())[-1]
    assert update_.buttons() == []
    bot.click(APPROVER, Ids.APPROVE, request)
    late = bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0]
    assert "already cancelled" in late.text()
    assert bot.grants() == []


def test_only_the_requester_can_cancel(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, _ = bot.request_access()

    bot.sender.click(APPROVER, Ids.CANCEL, str(request.id), channel_id=APPROVERS_CHANNEL)

    assert "Only the requester" in bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0].text()
    assert bot.requests()[0].state == RequestState.PENDING


def test_a_request_nobody_decides_expires(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(request_ttl=timedelta(seconds=1))
    request, _ = bot.request_access()

    wait_until(
        lambda: bot.requests()[0].state == RequestState.EXPIRED, what="the request to expire"
    )

    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "expired" in c.text()
    )
    assert "nobody decided in time" in dm[0].text()
    update_ = bot.slack.wait_for("chat.update", where=lambda c: "Expired" in c.text())[-1]
    assert update_.buttons() == []
    bot.click(APPROVER, Ids.APPROVE, request)
    assert "already expired" in bot.slack.wait_for("chat.postEphemeral", user=APPROVER)[0].text()
    assert bot.grants() == [] and "request_expired" in bot.audit_events(request.id)


# -- reminders ------------------------------------------------------------------------------


def test_reminder_comes_before_expiry_with_an_extend_button(
    bot_with: Callable[..., Bot],
) -> None:
    # 15-minute grants are reminded 14 minutes 57 seconds before they end: 3 s after the grant.
    bot = bot_with(settings={"reminder_minutes": 14.95, "reminder_min_grant_minutes": 10})
    _, grant = granted(bot)
    assert grant.granted_at is not None
    assert not [c for c in bot.slack.dms_to(REQUESTER) if "ends" in c.text()], "not yet"

    reminder = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "⏰" in c.text()
    )[0]

    assert reminder.buttons() == ["Extend"]
    reminded_at = bot.grants()[0].reminded_at
    assert reminded_at is not None and reminded_at - grant.granted_at >= timedelta(seconds=2)
    bot.runtime.sweep()
    assert len([c for c in bot.slack.dms_to(REQUESTER) if "⏰" in c.text()]) == 1


@pytest.mark.parametrize("min_grant_minutes", [30, 10])
def test_short_grants_get_no_reminder(bot_with: Callable[..., Bot], min_grant_minutes: int) -> None:
    # A 15-minute grant is inside the 15-minute reminder window from its first moment: only
    # REMINDER_MIN_GRANT_MINUTES stands between it and a reminder (30: none; 10: one).
    bot = bot_with(
        settings={"reminder_minutes": 15, "reminder_min_grant_minutes": min_grant_minutes}
    )
    request, _ = granted(bot)

    bot.runtime.sweep()
    bot.runtime.settle(request.id)

    reminded = bot.grants()[0].reminded_at is not None
    reminders = [c for c in bot.slack.dms_to(REQUESTER) if "⏰" in c.text()]
    if min_grant_minutes > 15:
        assert not reminded and not reminders
    else:
        assert reminded
        bot.slack.wait_for("chat.postMessage", channel=REQUESTER, where=lambda c: "⏰" in c.text())


# -- App Home and /access list --------------------------------------------------------------


def home_blocks(bot: Bot, user: str) -> list[dict[str, Any]]:
    before = len(bot.slack.calls_to("views.publish", user_id=user))
    response = bot.sender.open_home(user)
    assert response.status_code == 200
    published = bot.slack.wait_for("views.publish", user_id=user, count=before + 1)[-1]
    return published.args["view"]["blocks"]


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_app_home_shows_my_access_my_requests_and_my_decisions(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with()
    _, grant = granted(bot)
    pending, _ = bot.request_access(duration=timedelta(hours=1), justification="second thing")

    mine = home_blocks(bot, REQUESTER)
    theirs = home_blocks(bot, APPROVER)

    assert "Active access* (1)" in texts(mine) and "left" in texts(mine)
    assert "Your pending requests* (1)" in texts(mine)
    assert str(grant.id) in texts(mine) and str(pending.id) in texts(mine)
    assert "Waiting for your decision* (0)" in texts(mine)  # never one's own request
    assert "Waiting for your decision* (1)" in texts(theirs) and "second thing" in texts(theirs)


def test_app_home_stays_within_100_blocks_with_many_rows(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    for _ in range(40):
        insert_active_grant(bot.sessions, expires_in=timedelta(minutes=30))
    with bot.sessions.begin() as session:
        session.execute(update(AccessRequest).values(justification="x"))

    blocks = home_blocks(bot, REQUESTER)

    assert len(blocks) <= 100
    assert "Active access* (40)" in texts(blocks)
    assert "…and 25 more not shown (newest first)." in texts(blocks)


def test_app_home_buttons_act_and_refresh_the_home(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    request, _ = bot.request_access()
    home_blocks(bot, APPROVER)

    bot.sender.home_click(APPROVER, Ids.APPROVE, str(request.id))

    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")
    bot.slack.wait_for("views.publish", user_id=APPROVER, count=2)


def test_access_list_and_help(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    granted(bot)

    listing = bot.sender.command(REQUESTER, "list")
    helping = bot.sender.command(REQUESTER, "help")
    unknown = bot.sender.command(REQUESTER, "frobnicate")

    assert "Orders DB (read-only): until" in listing.text
    assert "`/access list`" in helping.text
    assert unknown.content == b""  # the modal opens, with a hint (tests/test_intake.py)
    assert bot.slack.wait_for("views.open")
