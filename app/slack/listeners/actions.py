"""Approve and Deny buttons, in the approvers' channel and in App Home."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.break_glass import BreakGlassAccess
from app.core.errors import AccessError
from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack import blocks
from app.slack.after_ack import AfterAck
from app.slack.ids import Ids
from app.slack.listeners.home import publish_home
from app.slack.listeners.replies import act, from_home, tell


def register(
    app: App,
    *,
    requests: AccessRequests,
    break_glass: BreakGlassAccess,
    clock: Clock,
    after_ack: AfterAck,
) -> None:
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

    @app.action(Ids.REVIEW)
    def review(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(review_grant, body, client)

    def review_grant(body: dict[str, Any], client: WebClient) -> None:
        act(
            body,
            client,
            lambda request, user: break_glass.review(request_id=request, actor=user),
            refresh_home=lambda user: publish_home(client, requests, user, clock),
        )

    @app.action(Ids.APPROVE_FOR)
    def approve_for_less(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(decide_for_less, body, client)

    def decide_for_less(body: dict[str, Any], client: WebClient) -> None:
        selected = (body.get("actions") or [{}])[0].get("selected_option") or {}
        request_id, duration = blocks.read_approve_for(str(selected.get("value") or ""))
        if duration is None:
            tell(body, client, "That is not a duration to approve.")
            return
        user_id = body["user"]["id"]
        try:
            requests.decide(request_id=request_id, actor=user_id, approve=True, duration=duration)
        except AccessError as exc:
            tell(body, client, str(exc))
        if from_home(body):
            publish_home(client, requests, user_id, clock)

    @app.action(Ids.DENY)
    def deny(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(decide, body, client, False)
