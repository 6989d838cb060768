"""What approvers read is what was asked: user text quoted whole, escaped, and visible."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.slack.ids import Ids
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, Bot
from tests.test_grant_lifecycle_features import home_blocks

FORGED = (
    "INC-1: checking orders\n"
    "*Requester:* <@UAPPROVER1>\n"
    "✅ Approved by <@UAPPROVER2> <!channel>\n"
    "\u202egnp.exe\u202c and a zero\u200bwidth\ufeff join\u2066"
)
INVISIBLE = "\u202e\u202c\u200b\ufeff\u2066"


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string Slack would render, from the blocks as Slack receives them."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found


def assert_quoted_whole(text: str) -> None:
    """Each line of the justification, wherever it appears, sits inside the quote."""
    lines = text.splitlines()
    for marker in ("INC-1: checking orders", "*Requester:* ", "✅ Approved by", "gnp.exe"):
        holding = [line for line in lines if marker in line]
        assert holding, (marker, text)
        assert all(line.startswith("> ") for line in holding), (marker, text)
    assert "<@UAPPROVER1>" not in text and "<!channel>" not in text
    assert "&lt;@UAPPROVER1&gt;" in text and "&lt;!channel&gt;" in text
    assert not any(char in text for char in INVISIBLE), text
    assert "zerowidth join" in text


def test_the_approvers_post_quotes_the_whole_justification(bot: Bot) -> None:
    _, post = bot.request_access(justification=FORGED)
    (text,) = [t for t in mrkdwn_texts(post.blocks) if "Justification" in t]
    assert_quoted_whole(text)


def test_app_home_quotes_the_whole_justification(bot: Bot) -> None:
    bot.request_access(justification=FORGED)
    blocks = home_blocks(bot, APPROVER)
    (text,) = [t for t in mrkdwn_texts(blocks) if "INC-1" in t]
    assert_quoted_whole(text)


def test_a_failing_hook_reaches_the_approvers_escaped(bot_with: Callable[..., Bot]) -> None:
    def after_grant(info: object) -> None:
        raise RuntimeError("<!channel> ticket <https://evil.example|click> \u202efailed")

    bot = bot_with(after_grant=after_grant)
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, request)
    note = bot.slack.wait_for(
        "chat.postMessage",
        channel=APPROVERS_CHANNEL,
        where=lambda c: "after_grant hook failed" in c.text(),
    )[0]
    text = note.args["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "\u202e" not in text


def test_unknown_access_text_is_echoed_escaped(bot: Bot) -> None:
    response = bot.sender.command("UREQUESTER", text="<!channel> `x` \u202e")
    assert response.status_code == 200
    text = response.text
    assert "I don't know `/access &lt;!channel&gt; 'x' `." in text, text
