"""Telling the person who clicked: ephemeral where there is a channel, a DM elsewhere (App Home)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from app.core.errors import AccessError


def tell(body: dict[str, Any], client: WebClient, text: str) -> None:
    user_id = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    if channel and not channel.startswith("D"):
        client.chat_postEphemeral(channel=channel, user=user_id, text=text)
    else:
        client.chat_postMessage(channel=user_id, text=text)


def act(
    body: dict[str, Any],
    client: WebClient,
    operation: Callable[[str, str], object],
    *,
    refresh_home: Callable[[str], None],
) -> None:
    """A button click: run `operation(button value, user)`, tell the user a refusal (the core's
    AccessError), and re-render App Home when the click came from there."""
    user_id = body["user"]["id"]
    try:
        operation(str(body["actions"][0].get("value")), user_id)
    except AccessError as exc:
        tell(body, client, str(exc))
    if from_home(body):
        refresh_home(user_id)


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (
        (body.get("view") or {}).get("type") == "home"
    )
