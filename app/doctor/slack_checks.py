"""Slack: the token and its scopes, the approvers' channels, every approver source."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from app.core.text import clean, redact_url
from app.doctor import Check, failed, passed
from app.slack.channels import exposure
from app.slack.scopes import BOT_SCOPES
from app.workflows.loader import Registry
from app.workflows.model import Workflow


def _error(exc: SlackClientError) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return exc.__class__.__name__


def token(client: WebClient) -> tuple[list[Check], str | None]:
    """auth.test, and the scopes Slack says the token carries (`x-oauth-scopes`). Returns the
    checks and the bot's user id (None when the token does not work)."""
    try:
        response = client.auth_test()
    except SlackClientError as exc:
        return [
            failed(
                f"SLACK_BOT_TOKEN does not work ({_error(exc)})",
                "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page",
            )
        ], None
    except OSError as exc:  # no answer at all (name lookup, refused, TLS, timeout): urllib's
        reason = clean(getattr(exc, "reason", None) or exc, 200)
        return [
            failed(
                f"Slack cannot be reached at {redact_url(client.base_url)} ({reason})",
                "check this machine's network and proxy (HTTPS_PROXY) to Slack, "
                "and SLACK_API_URL if you set it",
            )
        ], None
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    raw = headers.get("x-oauth-scopes")
    granted = {s.strip() for s in (raw if isinstance(raw, str) else "").split(",") if s.strip()}
    checks = [passed(f"Slack token works: @{response.get('user')} in {response.get('team')}")]
    missing = [scope for scope in BOT_SCOPES if scope not in granted]
    if missing:
        checks.append(
            failed(
                f"the bot token lacks scope(s) {', '.join(missing)}",
                "add them under OAuth & Permissions (or paste manifest.yml again), "
                "then reinstall the app to the workspace",
            )
        )
    else:
        checks.append(passed(f"the bot token carries the {len(BOT_SCOPES)} scopes of the manifest"))
    return checks, str(response.get("user_id") or "") or None


def channels(client: WebClient, registry: Registry) -> list[Check]:
    checks: list[Check] = []
    for workflow in registry.workflows:
        channel = workflow.approvers_channel
        name = f"workflow {workflow.name!r}: approvers' channel {channel}"
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackClientError as exc:
            checks.append(
                failed(
                    f"{name} cannot be read ({_error(exc)})",
                    "check the channel id, and invite the bot to it (/invite @accessbot)",
                )
            )
            continue
        if not info.get("is_member"):
            checks.append(
                failed(f"{name}: the bot is not a member", "invite it: /invite @accessbot")
            )
        else:
            checks.append(passed(f"{name}: the bot is a member"))
        why = exposure(info)
        members_approve = any(not workflow.approvers_for(r) for r in workflow.resources)
        if why and members_approve and not workflow.allow_open_approvers_channel:
            checks.append(
                failed(
                    f"{name} is {why}, and its members approve",
                    "make it private, name the approvers, or set allow_open_approvers_channel=True",
                )
            )
        else:
            shown = why or "private"
            checks.append(passed(f"{name} is {shown}"))
    return checks


def approvers(client: WebClient, registry: Registry, bot_user: str | None) -> list[Check]:
    checks: list[Check] = []
    for workflow in registry.workflows:
        for resource in workflow.resources:
            sources = workflow.approvers_for(resource)
            who = f"workflow {workflow.name!r}, resource {resource.id!r}"
            if not sources:
                checks.append(_channel_members(client, workflow, who, bot_user))
                continue
            people: set[str] = set()
            for source in sources:
                found, check = _source(client, source, who)
                people |= found
                if check is not None:
                    checks.append(check)
            if people:
                checks.append(passed(f"{who}: {len(people)} approver(s) resolve"))
            else:
                checks.append(
                    failed(f"{who}: no approver resolves", "fix the approvers listed above")
                )
    return checks


def _source(client: WebClient, source: str, who: str) -> tuple[set[str], Check | None]:
    try:
        if "@" in source:
            user = client.users_lookupByEmail(email=source)["user"]
            return {str(user["id"])}, None
        if source.startswith("S"):
            return set(client.usergroups_users_list(usergroup=source)["users"]), None
        user = client.users_info(user=source)["user"]
        if user.get("deleted"):
            return set(), failed(f"{who}: approver {source} is deactivated", "remove or replace")
        return {source}, None
    except SlackClientError as exc:
        return set(), failed(
            f"{who}: approver {source} does not resolve ({_error(exc)})",
            "check the user id, email or user group id",
        )


def _channel_members(client: WebClient, workflow: Workflow, who: str, bot: str | None) -> Check:
    try:
        members = set(client.conversations_members(channel=workflow.approvers_channel)["members"])
    except SlackClientError as exc:
        return failed(
            f"{who}: the members of {workflow.approvers_channel} approve, but cannot be read "
            f"({_error(exc)})",
            "invite the bot to the channel",
        )
    members.discard(bot or "")
    if not members:
        return failed(
            f"{who}: the members of {workflow.approvers_channel} approve, and there are none",
            "invite the approvers to the channel, or name them in `approvers`",
        )
    return passed(f"{who}: {len(members)} channel member(s) approve")
