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
from app.slack.listeners.replies import act, click_of, from_home, tell


def register(
    app: App,
    *,
    requests: AccessRequests,
    break_glass: BreakGlassAccess,
    clock: Clock,
    after_ack: AfterAck,
) -> None:
    client = app.client

    def decide(body: dict[str, Any], approve: bool) -> None:
        act(
            body,
            client,
            lambda request, user: requests.decide(request_id=request, actor=user, approve=approve),
            refresh_home=lambda user: publish_home(client, requests, user, clock),
        )

    @app.action(Ids.APPROVE)
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        after_ack.later("decide", click_of(body), True)
        ack()

    @app.action(Ids.REVIEW)
    def review(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        after_ack.later("review_grant", click_of(body))
        ack()

    def review_grant(body: dict[str, Any]) -> None:
        act(
            body,
            client,
            lambda request, user: break_glass.review(request_id=request, actor=user),
            refresh_home=lambda user: publish_home(client, requests, user, clock),
        )

    @app.action(Ids.APPROVE_FOR)
    def approve_for_less(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        after_ack.later("decide_for_less", click_of(body))
        ack()

    def decide_for_less(body: dict[str, Any]) -> None:
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
        after_ack.later("decide", click_of(body), False)
        ack()

    after_ack.define("decide", decide)
    after_ack.define("review_grant", review_grant)
    after_ack.define("decide_for_less", decide_for_less)
