"""Small mrkdwn helpers: escaping user text, dates Slack shows in each reader's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")
# Characters that reorder or hide text: bidirectional embeddings, overrides and isolates,
# zero-width spaces and joiners, the Arabic letter mark, the byte-order mark. With them a
# justification can show approvers something other than what it says.
INVISIBLE = re.compile("[\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """`text` without the characters that reorder or hide it (see INVISIBLE)."""
    return INVISIBLE.sub("", text)


def escape(text: str) -> str:
    """Neutralise `<!channel>`, `<@U…>` and links in text a user typed, and drop the
    characters that would reorder or hide it."""
    return visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str, limit: int) -> str:
    """User text inside `…`: escaped, and with no backtick to close the span early."""
    return "`" + escape(clip(text, limit)).replace("`", "'") + "`"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int) -> str:
    """Escaped block quote of the whole text, every line of it, in at most `limit` characters:
    no line of it can pass for a line of ours (a `*Requester:*`, an "Approved by")."""
    lines = escape(text).splitlines() or [""]
    quoted = "\n".join("> " + line for line in lines)
    if len(quoted) <= limit:
        return quoted
    kept: list[str] = []
    used = 2  # the "…" line
    for line in lines:
        shown = "> " + line
        if used + len(shown) + 1 > limit:
            room = limit - used - 1
            if room > 3:
                kept.append(clip(shown, room))
            break
        kept.append(shown)
        used += len(shown) + 1
    return "\n".join([*kept, "> …"]) if kept else clip("> " + lines[0], limit)


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
