"""Bad input gets a clear error on the offending field and changes nothing."""

from __future__ import annotations

import json
import time

import pytest

from app.slack.ids import Ids
from tests.support.bot import REQUESTER, Bot


def errors_of(response_body: bytes) -> dict[str, str]:
    answer = json.loads(response_body)
    assert answer["response_action"] == "errors"
    return answer["errors"]


@pytest.mark.parametrize(
    ("resource", "justification", "duration", "block", "message"),
    [
        ("billing-db", "fixing billing", 900, Ids.RESOURCE_BLOCK, "Unknown resource 'billing-db'"),
        (None, "fixing billing", 900, Ids.RESOURCE_BLOCK, "Choose a resource"),
        (
            "orders-db",
            "looking",
            7200,
            Ids.DURATION_BLOCK,
            "can be requested for: 1 second, 15 minutes, 1 hour",
        ),
        ("orders-db", "looking", "forever", Ids.DURATION_BLOCK, "Choose a duration"),
        ("orders-db", "looking", -900, Ids.DURATION_BLOCK, "Choose a duration"),
        ("orders-db", "", 900, Ids.JUSTIFICATION_BLOCK, "Say why"),
        ("orders-db", "   \n ", 900, Ids.JUSTIFICATION_BLOCK, "Say why"),
        ("orders-db", None, 900, Ids.JUSTIFICATION_BLOCK, "Say why"),
        ("orders-db", "x" * 5000, 900, Ids.JUSTIFICATION_BLOCK, "3000 characters (this is 5000)"),
    ],
)
def test_forged_submission_is_refused_on_the_offending_block(
    bot: Bot,
    resource: str | None,
    justification: str | None,
    duration: object,
    block: str,
    message: str,
) -> None:
    response = bot.sender.submit_request(
        REQUESTER,
        resource=resource,
        justification=justification,
        duration_seconds=duration,  # type: ignore[arg-type]
    )

    assert response.status_code == 200
    errors = errors_of(response.content)
    assert list(errors) == [block]
    assert message in errors[block]
    time.sleep(0.3)  # anything that would have happened after the ack has had time to
    assert bot.requests() == [] and bot.audit() == []
    assert bot.slack.calls_to("chat.postMessage") == []


def test_every_bad_field_is_reported_at_once(bot: Bot) -> None:
    response = bot.sender.submit_request(
        REQUESTER, resource="nope", justification="", duration_seconds=None
    )

    errors = errors_of(response.content)
    assert set(errors) == {Ids.RESOURCE_BLOCK, Ids.JUSTIFICATION_BLOCK, Ids.DURATION_BLOCK}


def test_justification_of_exactly_3000_characters_is_accepted(bot: Bot) -> None:
    request, post = bot.request_access(justification="y" * 3000)

    assert len(request.justification) == 3000
    section = next(b for b in post.blocks if "Justification" in b.get("text", {}).get("text", ""))
    assert len(section["text"]["text"]) <= 3000  # Slack's limit for a section


def test_mentions_and_links_in_a_justification_are_neutralised(bot: Bot) -> None:
    request, post = bot.request_access(
        justification="<!channel> see <https://evil.example|docs> & <@UBOSS>"
    )

    assert request.justification.startswith("<!channel>")
    assert "<!channel>" not in post.text() and "&lt;!channel&gt;" in post.text()
    assert "<@UBOSS>" not in post.text()


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "not-the-signing-secret"},
        {"timestamp": int(time.time()) - 10 * 60},
    ],
    ids=["wrong-signature", "stale-timestamp"],
)
def test_requests_not_signed_by_slack_get_401_and_change_nothing(bot: Bot, tamper: dict) -> None:
    from urllib.parse import urlencode

    body = urlencode(
        {
            "command": "/access",
            "user_id": REQUESTER,
            "trigger_id": "t",
            "team_id": "T0TEAM",
            "channel_id": "C1",
            "text": "",
        }
    )
    response = bot.sender.post(body, **tamper)

    assert response.status_code == 401
    assert bot.slack.calls_to("views.open") == []


def test_unsigned_request_gets_401(bot: Bot) -> None:
    response = bot.sender.http.post(bot.sender.url, content=b"command=/access&user_id=U1")

    assert response.status_code == 401
