"""/access: open the request modal within Slack's 3 seconds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.break_glass import BreakGlassAccess
from app.core.errors import AccessError, InvalidRequest
from app.core.intake import Intake, read_command
from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack import blocks
from app.slack.after_ack import AfterAck
from app.slack.home import list_text
from app.workflows.loader import Registry

HELP = (
    "*/access* opens a form to request temporary access: pick a resource, say why, pick how long.\n"
    "If PagerDuty shows you on call, access may be granted at once; otherwise the approvers "
    "decide, and I'll message you at each step. Access is revoked automatically when it "
    "expires; you can give it back, extend it or cancel a request from my DMs or my App Home.\n"
    "`/access orders-db` opens the form with that resource chosen; "
    "`/access orders-db 1h fixing INC-1234` asks at once.\n"
    "`/access break-glass orders-db 30m <reason>`: emergency access at once, where the policy "
    "allows you; the approvers are alerted and review it.\n"
    "`/access list` shows your access and pending requests; `/access help` shows this."
)


BREAK_GLASS_WORDS = ("break-glass", "breakglass")


def submission_id(trigger_id: object) -> str | None:
    """What makes a one-line `/access` idempotent: its trigger id, unique to one invocation (a
    replayed command carries the same). Stored beside modal view ids, so marked apart."""
    if not isinstance(trigger_id, str) or not trigger_id:
        return None
    return f"trigger:{trigger_id}"[:64]


def register(
    app: App,
    *,
    registry: Registry,
    requests: AccessRequests,
    break_glass: BreakGlassAccess,
    clock: Clock,
    after_ack: AfterAck,
) -> None:
    def open_modal(
        command: dict[str, Any],
        client: WebClient,
        intake: Intake | None = None,
        errors: dict[str, str] | None = None,
    ) -> None:
        # The per-person caps are read here, after /access's ack, not when the modal is
        # submitted: the submission's ack stays free of the database (submit() checks again,
        # under a lock, and a request past the cap is refused by DM).
        problem = requests.limit_problem(command["user_id"]) if command.get("user_id") else None
        if problem:
            errors = {**(errors or {}), "resource": problem}
        client.views_open(
            trigger_id=command["trigger_id"],
            view=blocks.request_modal(
                registry, channel_id=command.get("channel_id"), intake=intake, errors=errors
            ),
        )

    client = app.client

    def submit_at_once(requester_id: str, trigger_id: str | None, form: dict[str, Any]) -> None:
        intake = Intake(**form)
        try:
            requests.submit(
                requester_id=requester_id,
                resource_id=intake.resource_id or "",
                duration_seconds=intake.duration_seconds or "",
                justification=intake.justification or "",
                ticket=intake.ticket,
                submission_id=submission_id(trigger_id),
            )
        except InvalidRequest as exc:  # the policy changed between the ack and now
            client.chat_postMessage(channel=requester_id, text=f"Your request was refused: {exc}")

    def break_glass_now(requester_id: str, trigger_id: str | None, form: dict[str, Any]) -> None:
        intake = Intake(**form)
        try:
            break_glass.break_glass(
                requester_id=requester_id,
                resource_id=intake.resource_id or "",
                duration_seconds=intake.duration_seconds or "",
                reason=intake.justification or "",
                submission_id=submission_id(trigger_id),
            )
        except AccessError as exc:
            client.chat_postMessage(channel=requester_id, text=f"🚨 Break-glass refused: {exc}")

    def ask_break_glass(ack: Ack, command: dict[str, Any], text: str, client: WebClient) -> None:
        intake = read_command(registry, text)
        errors = break_glass.validate(
            resource_id=intake.resource_id or intake.unknown,
            duration_seconds=intake.duration_seconds,
            reason=intake.justification,
        )
        if errors:
            ack(text=blocks.break_glass_refused(errors))
            return
        after_ack.later(
            "break_glass_now", command["user_id"], command.get("trigger_id"), asdict(intake)
        )
        ack(text="🚨 Breaking glass: the approvers are being alerted. I'll message you.")

    @app.command("/access")
    def open_request_modal(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        text = (command.get("text") or "").strip()
        if text.lower() == "help":
            ack(text=HELP)
            return
        if text.lower() == "list":
            overview = requests.overview(command["user_id"], limit=20, decisions=False)
            ack(text=list_text(overview, now=clock()))
            return
        first, _, rest = text.partition(" ")
        if first.lower() in BREAK_GLASS_WORDS:
            ask_break_glass(ack, command, rest, client)
            return
        intake = read_command(registry, text)
        if intake.complete:
            errors = requests.validate(**intake.form)
            if not errors:
                # The per-person caps, as the modal checks them; submit() counts again.
                limit = requests.limit_problem(command["user_id"])
                if limit:
                    ack(text=f"Your request was refused: {limit}")
                    return
                after_ack.later(
                    "submit_at_once", command["user_id"], command.get("trigger_id"), asdict(intake)
                )
                ack(text=blocks.submitting(registry, intake))
                return
            ack()
            after_ack.submit(open_modal, command, client, intake, errors, urgent=True)
            return
        ack()
        # views.open first: the trigger_id expires
        after_ack.submit(open_modal, command, client, intake, urgent=True)

    after_ack.define("submit_at_once", submit_at_once)
    after_ack.define("break_glass_now", break_glass_now)
