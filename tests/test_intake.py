"""Faster intake: `/access orders-db`, the one-line `/access orders-db 15m why`, and the
type-ahead of a large catalog, through signed Slack requests against the running bot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.models import RequestState
from app.workflows.model import Resource
from tests.support.bot import APPROVERS_CHANNEL, REQUESTER, Bot, default_workflows
from tests.support.wait import wait_until


def opened_modal(bot: Bot) -> dict[str, Any]:
    return bot.slack.wait_for("views.open")[-1].args["view"]


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b["block_id"] == block_id)


def test_resource_word_opens_the_modal_with_it_chosen(bot: Bot) -> None:
    for text in ("orders-db", "ORDERS-DB", "orders db (read-only)"):
        response = bot.sender.command(REQUESTER, text)

        assert response.status_code == 200 and response.content == b""
        view = wait_until(
            lambda: len(bot.slack.calls_to("views.open")) and opened_modal(bot),
            what="the modal",
        )
        chosen = block(view, "resource")["element"]["initial_option"]
        assert chosen == {
            "text": {"type": "plain_text", "text": "Orders DB (read-only)", "emoji": True},
            "value": "orders-db",
        }, text
        assert "hint" not in block(view, "resource")
        bot.slack.calls.clear()
    assert bot.requests() == []


def test_unknown_word_opens_the_modal_with_a_hint(bot: Bot) -> None:
    response = bot.sender.command(REQUESTER, "billing-db <!channel>")

    assert response.status_code == 200 and response.content == b""  # no error page
    view = opened_modal(bot)
    resource = block(view, "resource")
    assert "initial_option" not in resource["element"]
    assert "billing-db <!channel>" in resource["hint"]["text"]  # plain_text: shown as typed
    assert resource["hint"]["type"] == "plain_text"
    assert bot.requests() == []


def test_one_line_request_is_submitted_at_once(bot: Bot) -> None:
    response = bot.sender.command(REQUESTER, "Orders-DB 15m fixing INC-1234 <@UOTHER>")

    assert response.status_code == 200
    assert "Asking for *Orders DB (read-only)* for 15 minutes" in response.text
    request = wait_until(lambda: bot.requests(), what="the request")[0]
    assert request.resource_id == "orders-db" and request.duration == timedelta(minutes=15)
    assert request.justification == "fixing INC-1234 <@UOTHER>"
    assert request.state == RequestState.PENDING
    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert post.buttons() == ["Approve", "Deny"]
    assert "fixing INC-1234 &lt;@UOTHER&gt;" in post.text()  # escaped: no mention
    assert bot.slack.calls_to("views.open") == []


def test_a_replayed_one_line_request_files_no_second_request(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    """A captured /access replayed within the signature window (same trigger id) changes
    nothing, as a replayed modal submission does (issue 9); a new command is a new request."""
    text = "orders-db 15m fixing INC-1234"
    bot.sender.command(REQUESTER, text, trigger_id="1234.5678.replayed")
    wait_until(lambda: bot.requests() and bot.requests()[0].approvers_message_ts, what="post")

    for _ in range(2):
        assert bot.sender.command(REQUESTER, text, trigger_id="1234.5678.replayed").is_success
    wait_until(
        lambda: len([r for r in caplog.records if "replayed submission" in r.getMessage()]) == 2,
        what="the two replays to be handled",
    )
    assert len(bot.requests()) == 1
    assert bot.audit_events().count("requested") == 1
    assert len(bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)) == 1

    bot.sender.command(REQUESTER, text, trigger_id="1234.5678.another")
    wait_until(lambda: len(bot.requests()) == 2, what="the new command's request")


def test_one_line_request_with_a_problem_opens_the_modal_prefilled(bot: Bot) -> None:
    response = bot.sender.command(REQUESTER, "orders-db 2h fixing INC-1234")

    assert response.status_code == 200 and response.content == b""
    view = opened_modal(bot)
    assert block(view, "resource")["element"]["initial_option"]["value"] == "orders-db"
    justification = block(view, "justification")
    assert justification["element"]["initial_value"] == "fixing INC-1234"
    assert "hint" not in justification
    duration = block(view, "duration")
    assert "initial_option" not in duration["element"]
    assert "can be requested for: 1 second, 15 minutes, 1 hour" in duration["hint"]["text"]
    time.sleep(0.3)
    assert bot.requests() == [] and bot.audit() == []


def test_one_line_request_without_a_reason_asks_for_one(bot: Bot) -> None:
    bot.sender.command(REQUESTER, "orders-db 1h")

    view = opened_modal(bot)
    duration = block(view, "duration")
    assert duration["element"]["initial_option"]["value"] == "3600"
    assert "Say why you need this access" in block(view, "justification")["hint"]["text"]
    time.sleep(0.3)
    assert bot.requests() == []


def catalog(bot_with: Callable[..., Bot], size: int) -> Bot:
    (base,) = default_workflows("http://127.0.0.1:9")
    grant = base.resources[0].grant
    resources = [
        Resource(id=f"db-{n:04d}", name=f"Customer database {n:04d}", grant=grant)
        for n in range(size)
    ]
    return bot_with(resources=resources)


def test_large_catalog_uses_a_type_ahead(bot_with: Callable[..., Bot]) -> None:
    bot = catalog(bot_with, 2000)
    bot.sender.command(REQUESTER)
    element = block(opened_modal(bot), "resource")["element"]
    assert element["type"] == "external_select" and "options" not in element
    assert element["action_id"] == "resource_select"

    timings = []
    for _ in range(5):
        started = time.monotonic()
        response = bot.sender.suggest(REQUESTER, element["action_id"], "resource", "DATABASE 123")
        timings.append(time.monotonic() - started)
    assert response.status_code == 200
    none = bot.sender.suggest(REQUESTER, element["action_id"], "resource", "billing")
    assert json.loads(none.content) == {"options": []}
    options = json.loads(response.content)["options"]
    assert [o["value"] for o in options] == [f"db-{n:04d}" for n in range(1230, 1240)]
    assert options[0]["text"] == {
        "type": "plain_text",
        "text": "Customer database 1230",
        "emoji": True,
    }
    broad = json.loads(bot.sender.suggest(REQUESTER, "resource_select", "resource", "d").content)
    assert len(broad["options"]) == 100  # Slack's limit
    assert max(timings) < 1.0, timings  # far inside Slack's 3 seconds

    response = bot.sender.submit_request(
        REQUESTER, resource="db-1234", justification="INC-7", duration_seconds=900
    )
    assert response.status_code == 200 and response.content == b""
    request = wait_until(lambda: bot.requests(), what="the request")[0]
    assert request.resource_id == "db-1234"


def test_small_catalog_keeps_the_static_menu(bot_with: Callable[..., Bot]) -> None:
    bot = catalog(bot_with, 100)
    bot.sender.command(REQUESTER)
    element = block(opened_modal(bot), "resource")["element"]
    assert element["type"] == "static_select" and len(element["options"]) == 100
