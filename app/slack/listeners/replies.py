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


def click_of(body: dict[str, Any]) -> dict[str, Any]:
    """What a job needs of a click's payload, in the same shape, to store with the job: who
    clicked, where, the button's value or chosen option, and whether it was in App Home. Not
    the rest (the legacy verification token, the whole message the button was on)."""
    action = (body.get("actions") or [{}])[0]
    selected = action.get("selected_option") or {}
    return {
        "user": {"id": body["user"]["id"]},
        "channel": {"id": (body.get("channel") or {}).get("id")},
        "actions": [
            {"value": action.get("value"), "selected_option": {"value": selected.get("value")}}
        ],
        "container": {"type": (body.get("container") or {}).get("type")},
        "view": {"type": (body.get("view") or {}).get("type")},
    }


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (
        (body.get("view") or {}).get("type") == "home"
    )
