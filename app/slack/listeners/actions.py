"""Approve and Deny buttons, in the approvers' channel and in App Home."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack.after_ack import AfterAck
from app.slack.ids import Ids
from app.slack.listeners.home import publish_home
from app.slack.listeners.replies import act


def register(app: App, *, requests: AccessRequests, clock: Clock, after_ack: AfterAck) -> None:
    def decide(body: dict[str, Any], client: WebClient, approve: bool) -> None:
        act(
            body,
            client,
            lambda request, user: requests.decide(request_id=request, actor=user, approve=approve),
            refresh_home=lambda user: publish_home(client, requests, user, clock),
        )

    @app.action(Ids.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(decide, body, client, True)

    @app.action(Ids.DENY)
    def deny(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(decide, body, client, False)
