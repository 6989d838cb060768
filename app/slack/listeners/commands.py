"""/access: open the request modal within Slack's 3 seconds."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack import blocks
from app.slack import format as fmt
from app.slack.after_ack import AfterAck
from app.slack.home import list_text
from app.workflows.loader import Registry

HELP = (
    "*/access* opens a form to request temporary access: pick a resource, say why, pick how long.\n"
    "If PagerDuty shows you on call, access may be granted at once; otherwise the approvers "
    "decide, and I'll message you at each step. Access is revoked automatically when it "
    "expires; you can give it back, extend it or cancel a request from my DMs or my App Home.\n"
    "`/access list` shows your access and pending requests; `/access help` shows this."
)


def register(
    app: App, *, registry: Registry, requests: AccessRequests, clock: Clock, after_ack: AfterAck
) -> None:
    def open_modal(command: dict[str, Any], client: WebClient) -> None:
        client.views_open(
            trigger_id=command["trigger_id"],
            view=blocks.request_modal(registry, channel_id=command.get("channel_id")),
        )

    @app.command("/access")
    def open_request_modal(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        text = (command.get("text") or "").strip().lower()
        if text == "help":
            ack(text=HELP)
            return
        if text == "list":
            overview = requests.overview(command["user_id"], limit=20, decisions=False)
            ack(text=list_text(overview, now=clock()))
            return
        if text:
            ack(text=f"I don't know {fmt.code('/access ' + text, 60)}.\n\n{HELP}")
            return
        ack()
        after_ack.submit(open_modal, command, client)  # views.open first: the trigger_id expires
