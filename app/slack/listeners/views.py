"""The request modal: validate on the ack path, store and route after it."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.core.errors import InvalidRequest
from app.core.requests import AccessRequests
from app.slack import blocks
from app.slack.after_ack import AfterAck
from app.slack.ids import Ids
from app.workflows.loader import Registry

log = logging.getLogger(__name__)

FIELD_BLOCKS = {
    "resource": Ids.RESOURCE_BLOCK,
    "justification": Ids.JUSTIFICATION_BLOCK,
    "duration": Ids.DURATION_BLOCK,
    "ticket": Ids.TICKET_BLOCK,
}


def register(
    app: App, *, requests: AccessRequests, registry: Registry, after_ack: AfterAck
) -> None:
    def store_request(requester_id: str, view_id: str | None, form: dict[str, Any]) -> None:
        try:
            requests.submit(
                requester_id=requester_id,
                resource_id=form["resource_id"] or "",
                duration_seconds=form["duration_seconds"] or "",
                justification=form["justification"] or "",
                ticket=form.get("ticket"),
                submission_id=view_id,
            )
        except InvalidRequest as exc:  # the policy changed between the ack and now
            app.client.chat_postMessage(
                channel=requester_id, text=f"Your request was refused: {exc}"
            )

    after_ack.define("store_request", store_request)

    @app.view(Ids.REQUEST_MODAL)
    def submit_request(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        form = blocks.read_request_form(view)
        errors = requests.validate(**form)
        requester_id = body["user"]["id"]
        # The per-person caps are not read here: the modal showed them when it opened, and
        # submit() checks them under a lock after the ack (refused by DM). The ack stays quick.
        if errors:
            ack(
                response_action="errors",
                errors={FIELD_BLOCKS[field]: message for field, message in errors.items()},
            )
            return
        view_id = view.get("id") if isinstance(view.get("id"), str) else None
        after_ack.later("store_request", requester_id, view_id, form)  # stored, then acked
        ack()

    @app.options(Ids.RESOURCE_SELECT)
    def suggest_resources(ack: Ack, payload: dict[str, Any]) -> None:
        """The type-ahead of a large catalog: answered from the loaded registry, in memory."""
        query = payload.get("value")
        ack(options=blocks.resource_options(registry, query if isinstance(query, str) else ""))

    @app.action(Ids.RESOURCE_SELECT)
    def offer_resource_durations(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Choosing a resource re-renders the modal with that resource's durations."""
        ack()
        after_ack.submit(update_durations, body, client, urgent=True)

    def update_durations(body: dict[str, Any], client: WebClient) -> None:
        view = body.get("view") or {}
        selected = (body.get("actions") or [{}])[0].get("selected_option") or {}
        metadata = json.loads(view.get("private_metadata") or "{}")
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=blocks.request_modal(
                registry, channel_id=metadata.get("channel"), resource_id=selected.get("value")
            ),
        )
