"""Approvers' channels whose members approve must be closed: private, and not shared with
another organisation (Slack Connect). Anyone who can join an open one becomes an approver."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.workflows.loader import Registry
from app.workflows.model import Workflow


def exposure(info: dict[str, object]) -> str | None:
    """Why a channel (conversations.info's `channel`) is open to people outside it, or None."""
    if info.get("is_ext_shared") or info.get("is_pending_ext_shared"):
        return "shared with another organisation (Slack Connect)"
    if not info.get("is_private"):
        return "public"
    return None


def _members_approve(workflow: Workflow) -> bool:
    return any(not workflow.approvers_for(resource) for resource in workflow.resources)


def open_approvers_channels(registry: Registry, client: WebClient) -> list[str]:
    """`file:line: message` for each workflow whose channel members approve while anyone
    may join the channel, unless the workflow opted in. A failed look-up is a problem too."""
    problems: list[str] = []
    for workflow in registry.workflows:
        if workflow.allow_open_approvers_channel or not _members_approve(workflow):
            continue
        channel = workflow.approvers_channel
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError as exc:
            problems.append(
                f"{workflow.location}: cannot check approvers_channel {channel} "
                f"(conversations.info: {exc.response.get('error')}); its members would approve "
                "(invite the bot, or name the approvers)"
            )
            continue
        why = exposure(info)
        if why:
            problems.append(
                f"{workflow.location}: workflow {workflow.name!r}: approvers_channel {channel} "
                f"is {why}, and with `approvers` empty its members approve: anyone who can "
                "join it could approve access. Name the approvers, make the channel private, "
                "or set allow_open_approvers_channel=True to accept this"
            )
    return problems
