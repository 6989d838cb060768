"""What the requester (or an approver) does with access: give it back, extend it, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.errors import AccessError, InvalidRequest
from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack import blocks
from app.slack.after_ack import AfterAck
from app.slack.ids import Ids
from app.slack.listeners.home import publish_home
from app.slack.listeners.replies import act, click_of, tell

EXTENSION_FIELDS = {"duration": Ids.DURATION_BLOCK, "justification": Ids.JUSTIFICATION_BLOCK}


def register(app: App, *, requests: AccessRequests, clock: Clock, after_ack: AfterAck) -> None:
    client = app.client

    def click(body: dict[str, Any], operation: Callable[[str, str], object]) -> None:
        act(
            body,
            client,
            operation,
            refresh_home=lambda user: publish_home(client, requests, user, clock),
        )

    @app.action(Ids.GIVE_BACK)
    def give_back(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        after_ack.later("give_back", click_of(body))
        ack()

    def give_back_grant(grant_id: str, actor: str) -> object:
        return requests.revoke_early(grant_id=grant_id, actor=actor)

    @app.action(Ids.CANCEL)
    def cancel(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        after_ack.later("cancel", click_of(body))
        ack()

    def cancel_request(request_id: str, actor: str) -> object:
        return requests.cancel(request_id=request_id, actor=actor)

    @app.action(Ids.EXTEND)
    def open_extension(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        after_ack.submit(show_extension_modal, body, client, urgent=True)

    def show_extension_modal(body: dict[str, Any], client: WebClient) -> None:
        """The choices come from the database; then views.open, while the trigger_id is valid."""
        grant_id = str(body["actions"][0].get("value"))
        try:
            view, choices = requests.extension_choices(grant_id=grant_id, actor=body["user"]["id"])
        except AccessError as exc:
            tell(body, client, str(exc))
            return
        client.views_open(trigger_id=body["trigger_id"], view=blocks.extension_modal(view, choices))

    @app.view(Ids.EXTENSION_MODAL)
    def submit_extension(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        form = blocks.read_extension_form(view)
        actor = body["user"]["id"]
        errors = requests.validate_extension(
            grant_id=form["grant_id"] or "",
            actor=actor,
            duration_seconds=form["duration_seconds"],
            justification=form["justification"],
        )
        if errors:
            ack(
                response_action="errors",
                errors={EXTENSION_FIELDS[field]: message for field, message in errors.items()},
            )
            return
        view_id = view.get("id") if isinstance(view.get("id"), str) else None
        after_ack.later("extend", actor, view_id, form)
        ack()

    def extend(actor: str, view_id: str | None, form: dict[str, Any]) -> None:
        try:
            requests.request_extension(
                grant_id=form["grant_id"] or "",
                actor=actor,
                duration_seconds=form["duration_seconds"],
                justification=form["justification"],
                submission_id=view_id,
            )
        except (InvalidRequest, AccessError) as exc:  # the grant ended between ack and now
            client.chat_postMessage(channel=actor, text=f"Your extension was refused: {exc}")

    after_ack.define("give_back", lambda body: click(body, give_back_grant))
    after_ack.define("cancel", lambda body: click(body, cancel_request))
    after_ack.define("extend", extend)
