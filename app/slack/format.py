"""Small mrkdwn helpers: escaping user text, dates Slack shows in each reader's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")


def escape(text: str) -> str:
    """Neutralise `<!channel>`, `<@U…>` and links in text a user typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int) -> str:
    """Escaped block quote that fits in `limit` characters."""
    quoted = "\n".join("> " + line for line in escape(text).splitlines() or [""])
    return clip(quoted, limit)


def date(when: datetime) -> str:
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def user(slack_id: str | None) -> str:
    """A mention for a Slack user id; anything else (an admin on the command line) as text."""
    if not slack_id:
        return "someone"
    if SLACK_USER.match(slack_id):
        return f"<@{slack_id}>"
    return escape(slack_id)
