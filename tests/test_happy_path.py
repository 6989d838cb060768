"""The access loop end to end: /access → modal → approvers → Approve → grant → expiry."""

from __future__ import annotations

from datetime import timedelta

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, REQUESTER, Bot
from tests.support.wait import wait_until


def test_slash_command_opens_the_request_modal(bot: Bot) -> None:
    response = bot.sender.command(REQUESTER)

    assert response.status_code == 200
    view = bot.slack.wait_for("views.open")[0].args["view"]
    labels = [block["label"]["text"] for block in view["blocks"]]
    assert labels == ["Resource", "Justification", "Duration"]
    resource, justification, duration = (block["element"] for block in view["blocks"])
    assert resource["type"] == "static_select"
    assert [o["value"] for o in resource["options"]] == ["orders-db"]
    assert resource["options"][0]["text"]["text"] == "Orders DB (read-only)"
    assert justification["type"] == "plain_text_input" and justification["multiline"] is True
    assert justification["max_length"] == 3000
    assert duration["type"] == "static_select"
    assert [o["text"]["text"] for o in duration["options"]] == ["1 second", "15 minutes", "1 hour"]


def test_approved_request_is_granted_then_revoked_at_expiry(bot: Bot) -> None:
    request, post = bot.request_access(duration=timedelta(seconds=1))

    assert request.state == RequestState.PENDING
    assert request.requester_email == "alice@example.com"
    assert post.args["channel"] == APPROVERS_CHANNEL
    assert f"<@{REQUESTER}>" in post.text()
    assert "Orders DB (read-only)" in post.text() and "1 second" in post.text()
    assert "INC-1234: checking stuck orders" in post.text()
    assert post.buttons() == ["Approve", "Deny"]
    confirmation = bot.slack.wait_for("chat.postMessage", channel=REQUESTER)[0]
    assert "sent to the approvers" in confirmation.text()

    bot.click(APPROVER, Ids.APPROVE, request)

    granted = wait_until(lambda: bot.webhook.events_of("grant"), what="the grant webhook")
    assert granted[0]["request_id"] == str(request.id)
    assert granted[0]["user"] == {"slack_id": REQUESTER, "email": "alice@example.com"}
    assert granted[0]["approved_by"] == APPROVER
    assert granted[0]["resource"] == "orders-db" and granted[0]["workflow"] == "production"
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )
    assert "Orders DB (read-only)" in dm[0].text()
    update = bot.slack.wait_for(
        "chat.update", ts=request.approvers_message_ts, where=lambda c: "granted until" in c.text()
    )[-1]
    assert f"Approved by <@{APPROVER}>" in update.text()
    assert update.buttons() == ["Revoke"]  # approvers may take active access away

    revoked = wait_until(
        lambda: bot.webhook.events_of("revoke"), timeout=5, what="the revoke webhook"
    )
    assert revoked[0]["request_id"] == str(request.id)
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "has ended" in c.text()
    )
    ended = bot.slack.wait_for("chat.update", where=lambda c: "expired and was revoked" in c.text())
    assert ended[-1].buttons() == []
    (grant,) = bot.grants()
    assert grant.state == GrantState.REVOKED and grant.end_reason == "expired"
    assert bot.audit_events(request.id) == [
        "requested",
        "approved",
        "granted",
        "expired",
        "revoked",
    ]
