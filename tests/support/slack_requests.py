"""Requests signed the way Slack signs them, sent to the running app over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from app.slack.ids import Ids

SIGNING_SECRET = "test-signing-secret"
TEAM = {"id": "T0TEAM", "domain": "acme"}


class SlackSender:
    def __init__(self, base_url: str, signing_secret: str = SIGNING_SECRET) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.signing_secret = signing_secret
        self.http = httpx.Client(timeout=10)

    def post(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(
            timestamp=ts, body=body
        )
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or "",
        }
        return self.http.post(self.url, content=body.encode(), headers=headers)

    def payload(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.post(urlencode({"payload": json.dumps(payload)}), **kwargs)

    # -- what people do --------------------------------------------------------------------

    def command(
        self,
        user_id: str,
        text: str = "",
        channel_id: str = "C0GENERAL",
        *,
        trigger_id: str | None = None,
    ) -> httpx.Response:
        """A /access command; each has a trigger id of its own, as Slack's do, unless
        `trigger_id`."""
        return self.post(
            urlencode(
                {
                    "token": "legacy",
                    "team_id": TEAM["id"],
                    "team_domain": TEAM["domain"],
                    "channel_id": channel_id,
                    "channel_name": "general",
                    "user_id": user_id,
                    "user_name": user_id.lower(),
                    "command": "/access",
                    "text": text,
                    "api_app_id": "A0APP",
                    "response_url": "https://hooks.slack.invalid/commands/1",
                    "trigger_id": trigger_id or f"trigger-{uuid.uuid4().hex[:8]}",
                }
            )
        )

    def submit_request(
        self,
        user_id: str,
        *,
        resource: str | None,
        justification: str | None,
        duration_seconds: int | str | None,
        ticket: str | None = None,
        view_id: str | None = None,
    ) -> httpx.Response:
        """A view_submission of the /access modal with the given values (any of them forged);
        `ticket` fills the Ticket field (only when the workflow asks for one). Each is from a
        modal of its own (a new view id), as Slack's are, unless `view_id`."""

        def selected(value: Any) -> dict[str, Any]:
            if value is None:
                return {"type": "static_select", "selected_option": None}
            return {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": str(value)},
                    "value": str(value),
                },
            }

        values = {
            Ids.RESOURCE_BLOCK: {Ids.RESOURCE_SELECT: selected(resource)},
            Ids.JUSTIFICATION_BLOCK: {
                Ids.VALUE: {"type": "plain_text_input", "value": justification}
            },
            Ids.DURATION_BLOCK: {Ids.VALUE: selected(duration_seconds)},
        }
        if ticket is not None:
            values[Ids.TICKET_BLOCK] = {Ids.VALUE: {"type": "plain_text_input", "value": ticket}}
        return self.payload(
            {
                "type": "view_submission",
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM["id"]},
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
                "view": {
                    "id": view_id or f"V{uuid.uuid4().hex[:10].upper()}",
                    "team_id": TEAM["id"],
                    "type": "modal",
                    "callback_id": Ids.REQUEST_MODAL,
                    "private_metadata": json.dumps({"channel": "C0GENERAL"}),
                    "state": {"values": values},
                    "hash": "h1",
                    "app_id": "A0APP",
                },
                "response_urls": [],
            }
        )

    def click(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        channel_id: str,
        message_ts: str | None = None,
    ) -> httpx.Response:
        ts = message_ts or "1700000000.000100"
        return self.payload(
            {
                "type": "block_actions",
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM["id"]},
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
                "container": {"type": "message", "message_ts": ts, "channel_id": channel_id},
                "channel": {"id": channel_id, "name": "approvals"},
                "message": {"type": "message", "ts": ts, "text": "request"},
                "response_url": "https://hooks.slack.invalid/actions/1",
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": Ids.DECISION_BLOCK,
                        "value": value,
                        "type": "button",
                        "action_ts": str(time.time()),
                    }
                ],
            }
        )

    def choose(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        channel_id: str,
        message_ts: str | None = None,
    ) -> httpx.Response:
        """An option chosen in a static_select of a message (block_actions, as Slack sends)."""
        ts = message_ts or "1700000000.000100"
        return self.payload(
            {
                "type": "block_actions",
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM["id"]},
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
                "container": {"type": "message", "message_ts": ts, "channel_id": channel_id},
                "channel": {"id": channel_id, "name": "approvals"},
                "message": {"type": "message", "ts": ts, "text": "request"},
                "response_url": "https://hooks.slack.invalid/actions/1",
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": Ids.DECISION_BLOCK,
                        "type": "static_select",
                        "selected_option": {
                            "text": {"type": "plain_text", "text": "chosen"},
                            "value": value,
                        },
                        "action_ts": str(time.time()),
                    }
                ],
            }
        )

    def suggest(self, user_id: str, action_id: str, block_id: str, typed: str) -> httpx.Response:
        """What Slack sends to the options load URL while someone types in an external_select
        of a modal (a `block_suggestion`, as Slack's reference documents it)."""
        return self.payload(
            {
                "type": "block_suggestion",
                "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM["id"]},
                "container": {"type": "view", "view_id": "V0VIEW"},
                "api_app_id": "A0APP",
                "token": "legacy",
                "action_id": action_id,
                "block_id": block_id,
                "value": typed,
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "view": {
                    "id": "V0VIEW",
                    "type": "modal",
                    "callback_id": Ids.REQUEST_MODAL,
                    "state": {"values": {}},
                    "hash": "h1",
                },
            }
        )

    def home_click(self, user_id: str, action_id: str, value: str) -> httpx.Response:
        """A button in the App Home tab."""
        return self.payload(
            {
                "type": "block_actions",
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "user": {"id": user_id, "team_id": TEAM["id"]},
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
                "container": {"type": "view", "view_id": "VHOME"},
                "view": {"id": "VHOME", "type": "home", "hash": "h", "state": {"values": {}}},
                "actions": [
                    {"action_id": action_id, "block_id": "b", "value": value, "type": "button"}
                ],
            }
        )

    def event(self, event: dict[str, Any]) -> httpx.Response:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM["id"],
                "api_app_id": "A0APP",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM["id"], "user_id": "UBOT", "is_bot": True}],
            }
        )
        return self.post(body, content_type="application/json")

    def open_home(self, user_id: str) -> httpx.Response:
        return self.event(
            {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"}
        )

    def submit_extension(
        self,
        user_id: str,
        grant_id: str,
        *,
        duration_seconds: int | None,
        justification: str | None,
        view_id: str | None = None,
    ) -> httpx.Response:
        values = {
            Ids.DURATION_BLOCK: {
                Ids.VALUE: {
                    "type": "static_select",
                    "selected_option": None
                    if duration_seconds is None
                    else {
                        "text": {"type": "plain_text", "text": "x"},
                        "value": str(duration_seconds),
                    },
                }
            },
            Ids.JUSTIFICATION_BLOCK: {
                Ids.VALUE: {"type": "plain_text_input", "value": justification}
            },
        }
        return self.payload(
            {
                "type": "view_submission",
                "team": {"id": TEAM["id"], "domain": TEAM["domain"]},
                "user": {"id": user_id, "team_id": TEAM["id"]},
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
                "view": {
                    "id": view_id or f"V{uuid.uuid4().hex[:10].upper()}",
                    "team_id": TEAM["id"],
                    "type": "modal",
                    "callback_id": Ids.EXTENSION_MODAL,
                    "private_metadata": json.dumps({"grant": grant_id}),
                    "state": {"values": values},
                    "hash": "h1",
                },
                "response_urls": [],
            }
        )
