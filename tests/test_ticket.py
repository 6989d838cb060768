"""Ticket references: `Workflow(ticket=Ticket(...))` asks for a ticket in the modal, checks its
pattern, and shows it as a link in every message, DM and audit row. Through signed Slack
requests against the running bot."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.admin.audit import export_audit
from app.core.models import GrantState
from app.slack.ids import Ids
from app.workflows.model import Ticket
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, REQUESTER, Bot
from tests.support.wait import wait_until

JIRA = Ticket(pattern=r"[A-Z]+-\d+", url="https://jira.example.com/browse/{}", required=True)
LINK = "<https://jira.example.com/browse/INC-1234|INC-1234>"


@pytest.fixture
def bot(bot_with: Callable[..., Bot]) -> Bot:
    return bot_with(ticket=JIRA)


def submit(bot: Bot, ticket: str | None, justification: str = "fixing orders") -> Any:
    return bot.sender.submit_request(
        REQUESTER,
        resource="orders-db",
        justification=justification,
        duration_seconds=900,
        ticket=ticket,
    )


def test_the_modal_asks_for_the_ticket(bot: Bot) -> None:
    bot.sender.command(REQUESTER)

    view = bot.slack.wait_for("views.open")[0].args["view"]
    ticket = view["blocks"][-1]
    assert ticket["block_id"] == "ticket" and ticket["label"]["text"] == "Ticket"
    assert ticket["optional"] is False
    assert ticket["element"]["type"] == "plain_text_input"
    assert ticket["element"]["placeholder"]["text"] == "INC-1234"


@pytest.mark.parametrize(
    ("ticket", "message"),
    [
        (None, "Give a ticket reference."),
        ("  ", "Give a ticket reference."),
        ("inc-1234", "“inc-1234” is not a ticket reference (like INC-1234)."),
        ("INC-1234 and more", "is not a ticket reference"),
    ],
)
def test_a_missing_or_malformed_ticket_is_refused_on_its_field(
    bot: Bot, ticket: str | None, message: str
) -> None:
    response = submit(bot, ticket)

    assert response.status_code == 200
    answer = json.loads(response.content)
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [Ids.TICKET_BLOCK]
    assert message in answer["errors"][Ids.TICKET_BLOCK]
    time.sleep(0.3)
    assert bot.requests() == [] and bot.audit() == []


def test_the_ticket_is_a_link_in_every_message_dm_and_audit_row(bot: Bot) -> None:
    response = submit(bot, "INC-1234")
    assert response.status_code == 200 and response.content == b""
    request = wait_until(
        lambda: bot.requests() and bot.requests()[0].approvers_message_ts, what="the post"
    )
    (request,) = bot.requests()
    assert request.ticket == "INC-1234"
    assert request.ticket_url == "https://jira.example.com/browse/INC-1234"
    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert LINK in post.text()
    submitted = bot.slack.wait_for("chat.postMessage", channel=REQUESTER)[0]
    assert LINK in submitted.text()

    bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")
    granted = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )[0]
    assert LINK in granted.text()
    update = bot.slack.wait_for(
        "chat.update", channel=APPROVERS_CHANNEL, where=lambda c: "granted until" in c.text()
    )[-1]
    assert LINK in update.text()
    for event in ("requested", "approved"):
        row = next(e for e in bot.audit(request.id) if e.event == event)
        assert row.detail["ticket"] == "INC-1234"
        assert row.detail["ticket_url"] == "https://jira.example.com/browse/INC-1234"
    exported = io.StringIO()
    with bot.sessions() as session:  # what `accessbot audit export` writes
        export_audit(session, exported)
    rows = [json.loads(line) for line in exported.getvalue().splitlines()]
    mine = [r for r in rows if r["request_id"] == str(request.id)]
    assert {r["event"] for r in mine} >= {"requested", "approved", "granted"}
    assert all(r["ticket"] == "INC-1234" for r in mine)
    assert all(r["ticket_url"] == "https://jira.example.com/browse/INC-1234" for r in mine)


def test_one_line_request_takes_the_ticket_from_the_text(bot: Bot) -> None:
    bot.sender.command(REQUESTER, "orders-db 15m fixing INC-77, the stuck orders")

    request = wait_until(lambda: bot.requests(), what="the request")[0]
    assert request.ticket == "INC-77"
    assert request.justification == "fixing INC-77, the stuck orders"


def test_one_line_request_without_a_ticket_opens_the_modal_saying_so(bot: Bot) -> None:
    bot.sender.command(REQUESTER, "orders-db 15m fixing the stuck orders")

    view = bot.slack.wait_for("views.open")[0].args["view"]
    ticket = next(b for b in view["blocks"] if b["block_id"] == "ticket")
    assert "Give a ticket reference." in ticket["hint"]["text"]
    justification = next(b for b in view["blocks"] if b["block_id"] == "justification")
    assert justification["element"]["initial_value"] == "fixing the stuck orders"
    time.sleep(0.3)
    assert bot.requests() == []


def test_without_a_ticket_rule_there_is_no_field(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with()
    bot.sender.command(REQUESTER)

    view = bot.slack.wait_for("views.open")[0].args["view"]
    assert [b["block_id"] for b in view["blocks"]] == ["resource", "justification", "duration"]
