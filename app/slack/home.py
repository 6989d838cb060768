"""The App Home tab: my access, my requests, what waits for my decision, my history.

Always within Slack's 100-block limit, however many rows there are: each section shows the
newest few and says how many more are not shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.core.durations import describe_duration
from app.core.models import GrantState
from app.core.requests import Overview, Page
from app.core.views import RequestView
from app.slack import format as fmt
from app.slack.blocks import (
    Block,
    actions,
    button,
    decision_buttons,
    section,
    status_line,
    summary_of,
)
from app.slack.ids import Ids

MAX_BLOCKS = 100
SHOWN = {"active": 15, "pending": 10, "to_decide": 15, "history": 10}


def time_left(view: RequestView, now: datetime) -> str:
    if view.expires_at is None:
        return ""
    seconds = int((view.expires_at - now).total_seconds())
    if seconds <= 0:
        return "ending now"
    rounded = seconds - seconds % 60 if seconds >= 60 else seconds
    return describe_duration(timedelta(seconds=rounded)) + " left"


def home_view(overview: Overview, *, now: datetime) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your access"}},
        section("Type `/access` in any channel to ask for access; `/access help` explains."),
    ]
    blocks += _section(
        "🔓 Active access", overview.active, SHOWN["active"], lambda v: _active(v, now)
    )
    blocks += _section("⏳ Your pending requests", overview.pending, SHOWN["pending"], _pending)
    blocks += _section(
        "🗳️ Waiting for your decision", overview.to_decide, SHOWN["to_decide"], _to_decide
    )
    blocks += _history(overview.history, SHOWN["history"])
    assert len(blocks) <= MAX_BLOCKS, len(blocks)
    return {"type": "home", "blocks": blocks}


def _section(title: str, page: Page, shown: int, render: Any) -> list[Block]:
    blocks: list[Block] = [{"type": "divider"}, section(f"*{title}* ({page.total})")]
    if not page.items:
        blocks.append(_context("Nothing here."))
        return blocks
    for view in page.items[:shown]:
        blocks += render(view)
    hidden = page.total - min(shown, len(page.items))
    if hidden > 0:
        blocks.append(_context(f"…and {hidden} more not shown (newest first)."))
    return blocks


def _active(view: RequestView, now: datetime) -> list[Block]:
    line = f"*{fmt.escape(view.resource_name)}*"
    if view.grant_state == GrantState.ACTIVE and view.expires_at:
        line += f", until {fmt.date(view.expires_at)} ({time_left(view, now)})"
        assert view.grant_id
        return [
            section(line),
            actions(
                button("Extend", Ids.EXTEND, str(view.grant_id)),
                button("Give back", Ids.GIVE_BACK, str(view.grant_id), "danger"),
            ),
        ]
    return [section(f"{line}: {status_line(view)}")]


def _pending(view: RequestView) -> list[Block]:
    what = f"*{fmt.escape(view.resource_name)}*, {describe_duration(view.duration)}"
    text = f"{what}: {status_line(view)}"
    return [section(text, accessory=button("Cancel", Ids.CANCEL, str(view.id)))]


def _to_decide(view: RequestView) -> list[Block]:
    why = fmt.quote(view.justification, 300)
    return [section(f"{summary_of(view)}\n{why}\n{status_line(view)}"), decision_buttons(view)]


def _history(page: Page, shown: int) -> list[Block]:
    blocks: list[Block] = [{"type": "divider"}, section(f"*📜 Recent history* ({page.total})")]
    if not page.items:
        return [*blocks, _context("Nothing yet.")]
    lines = [
        f"• {fmt.date(v.created_at)}: *{fmt.escape(v.resource_name)}* "
        f"({describe_duration(v.duration)}): {status_line(v)}"
        for v in page.items[:shown]
    ]
    blocks.append(section(fmt.clip("\n".join(lines), 3000)))
    hidden = page.total - min(shown, len(page.items))
    if hidden > 0:
        blocks.append(_context(f"…and {hidden} more not shown; `accessbot audit export` has all."))
    return blocks


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def list_text(overview: Overview, *, now: datetime) -> str:
    """`/access list`: my access and my pending requests, as one ephemeral message."""
    lines = ["*Your active access*"]
    lines += [
        f"• {fmt.escape(v.resource_name)}: until {fmt.date(v.expires_at)} ({time_left(v, now)})"
        if v.expires_at
        else f"• {fmt.escape(v.resource_name)}: {status_line(v)}"
        for v in overview.active.items[:20]
    ] or ["• none"]
    lines.append("*Your pending requests*")
    lines += [
        f"• {fmt.escape(v.resource_name)} for {describe_duration(v.duration)}: {status_line(v)}"
        for v in overview.pending.items[:20]
    ] or ["• none"]
    return fmt.clip("\n".join(lines), 3000)
