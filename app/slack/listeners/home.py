"""App Home: rendered whenever someone opens it, and after they act from it."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack.after_ack import AfterAck
from app.slack.home import home_view


def publish_home(client: WebClient, requests: AccessRequests, user_id: str, clock: Clock) -> None:
    client.views_publish(user_id=user_id, view=home_view(requests.overview(user_id), now=clock()))


def register(app: App, *, requests: AccessRequests, clock: Clock, after_ack: AfterAck) -> None:
    @app.event("app_home_opened")
    def show_home(event: dict[str, Any], client: WebClient) -> None:
        # Bolt acked the event before calling us; free its thread for the next ack at once.
        if event.get("tab", "home") == "home":
            after_ack.submit(publish_home, client, requests, event["user"], clock)
