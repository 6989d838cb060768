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


def test_unknown_access_text_is_shown_as_typed_and_visible(bot: Bot) -> None:
    """/access with words that name no resource opens the modal with a hint saying so (issue
    11): plain text, where Slack links and mentions nothing, without the invisible characters."""
    response = bot.sender.command("UREQUESTER", text="<!channel> `x` \u202eevil\u200b")
    assert response.status_code == 200 and response.content == b""
    view = bot.slack.wait_for("views.open")[0].args["view"]
    (hint,) = [b["hint"] for b in view["blocks"] if b["block_id"] == Ids.RESOURCE_BLOCK]
    assert hint["type"] == "plain_text"
    assert "<!channel> `x` evil" in hint["text"], hint
    assert not set(INVISIBLE) & set(hint["text"])
    assert mrkdwn_texts(view["blocks"]) == []  # nothing of it rendered as mrkdwn
