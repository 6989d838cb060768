"""The core's Directory over Slack's Web API: users.info, users.lookupByEmail,
usergroups.users.list and conversations.members."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.core.ports import DirectoryError, Person

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

    def user_id_by_email(self, email: str) -> str | None:
        try:
            return str(self.client.users_lookupByEmail(email=email)["user"]["id"])
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise DirectoryError(
                f"users.lookupByEmail failed: {exc.response.get('error')}"
            ) from exc

    def usergroup_members(self, group_id: str) -> list[str]:
        try:
            return list(self.client.usergroups_users_list(usergroup=group_id)["users"])
        except SlackApiError as exc:
            raise DirectoryError(
                f"usergroups.users.list {group_id} failed: {exc.response.get('error')}"
            ) from exc

    def channel_members(self, channel_id: str) -> list[str]:
        members: list[str] = []
        cursor = None
        try:
            while True:
                page = self.client.conversations_members(
                    channel=channel_id, limit=1000, cursor=cursor
                )
                members.extend(page["members"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return members
        except SlackApiError as exc:
            raise DirectoryError(
                f"conversations.members {channel_id} failed: {exc.response.get('error')}"
            ) from exc
