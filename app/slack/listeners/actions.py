"""Approve and Deny buttons in the approvers' channel."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.errors import AccessError
from app.core.requests import AccessRequests
from app.slack.ids import Ids
from app.workflows.loader import Registry


def register(app: App, *, requests: AccessRequests, registry: Registry) -> None:
    def decide(body: dict[str, Any], client: WebClient, *, approve: bool) -> None:
        action = body["actions"][0]
        user_id = body["user"]["id"]
        try:
            requests.decide(request_id=str(action.get("value")), actor=user_id, approve=approve)
        except AccessError as exc:
            channel = (body.get("channel") or {}).get("id") or user_id
            client.chat_postEphemeral(channel=channel, user=user_id, text=str(exc))

    @app.action(Ids.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        decide(body, client, approve=True)

    @app.action(Ids.DENY)
    def deny(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        decide(body, client, approve=False)
