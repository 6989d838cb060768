"""The core's Directory over Slack's users.info (scope users:read.email for the email)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.core.ports import Person

log = logging.getLogger(__name__)


class SlackDirectory:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def person(self, slack_id: str) -> Person:
        try:
            user = self.client.users_info(user=slack_id)["user"]
        except SlackApiError as exc:
            log.warning("users.info %s failed: %s", slack_id, exc.response.get("error"))
            return Person(slack_id=slack_id, email=None, name=None)
        profile = user.get("profile") or {}
        email = profile.get("email") or None
        name = profile.get("real_name") or user.get("real_name") or user.get("name")
        return Person(slack_id=slack_id, email=email, name=name)
