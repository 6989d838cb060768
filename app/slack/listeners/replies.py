"""Telling the person who clicked: ephemeral where there is a channel, a DM elsewhere (App Home)."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient


def tell(body: dict[str, Any], client: WebClient, text: str) -> None:
    user_id = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    if channel and not channel.startswith("D"):
        client.chat_postEphemeral(channel=channel, user=user_id, text=text)
    else:
        client.chat_postMessage(channel=user_id, text=text)


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (
        (body.get("view") or {}).get("type") == "home"
    )
