"""The core's Notifier in Slack: DMs to the requester, the approvers' message kept current."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.core.models import RequestState
from app.core.ports import MessageRef
from app.core.views import RequestView
from app.slack import blocks

log = logging.getLogger(__name__)


class SlackNotifier:
    """Slack failures are logged, never raised: the change they report is already committed."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def request_submitted(self, view: RequestView) -> MessageRef | None:
        self._dm(view, blocks.dm_submitted(view), blocks.dm_submitted_blocks(view))
        return self._post(view)

    def post_to_approvers(self, view: RequestView) -> MessageRef | None:
        return self._post(view)

    def _post(self, view: RequestView) -> MessageRef | None:
        text, message_blocks = blocks.approvers_message(view)
        try:
            response = self.client.chat_postMessage(
                channel=view.approvers_channel, text=text, blocks=message_blocks
            )
        except SlackApiError as exc:
            log.error("could not post request %s to %s: %s", view.id, view.approvers_channel, exc)
            return None
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def request_auto_decided(self, view: RequestView) -> MessageRef | None:
        """The workflow decided alone: an FYI to the approvers (no buttons); tell a denial."""
        if view.state == RequestState.DENIED:
            self._dm(view, blocks.dm_denied(view))
        return self._post(view)

    def request_progress(self, view: RequestView) -> None:
        self._refresh(view)

    def note(self, view: RequestView, text: str) -> None:
        self._alert(view, text)

    def request_decided(self, view: RequestView) -> None:
        self._refresh(view)
        if view.state == RequestState.DENIED:
            self._dm(view, blocks.dm_denied(view))

    def grant_activated(self, view: RequestView) -> bool:
        self._refresh(view)
        return self._dm(view, blocks.dm_granted(view), blocks.dm_granted_blocks(view))

    def grant_failed(self, view: RequestView) -> bool:
        self._refresh(view)
        self._alert(view, blocks.alert_grant_failed(view))
        return self._dm(view, blocks.dm_grant_failed(view))

    def grant_ended(self, view: RequestView) -> bool:
        self._refresh(view)
        if view.end_reason != "expired":
            self._alert(view, blocks.note_revoked_early(view), broadcast=False)
        return self._dm(view, blocks.dm_ended(view))

    def request_closed(self, view: RequestView) -> None:
        self._refresh(view)
        self._dm(view, blocks.dm_closed(view))

    def grant_extended(self, view: RequestView, extension: RequestView) -> None:
        self._refresh(view)
        self._refresh(extension)
        self._dm(view, blocks.dm_extended(view, extension), blocks.dm_granted_blocks(view))

    def extension_failed(self, view: RequestView, extension: RequestView, why: str) -> None:
        self._refresh(extension)
        self._alert(extension, blocks.dm_extension_failed(view, why), broadcast=False)
        self._dm(view, blocks.dm_extension_failed(view, why))

    def expiry_reminder(self, view: RequestView) -> None:
        self._dm(view, blocks.dm_reminder(view), blocks.dm_reminder_blocks(view))

    def revoke_failing(self, view: RequestView) -> None:
        self._refresh(view)
        self._alert(view, blocks.alert_revoke_failing(view))

    # -- plumbing --------------------------------------------------------------------------

    def _refresh(self, view: RequestView) -> None:
        """Re-render the approvers' message from the current state."""
        if not view.approvers_message_ts:
            return
        text, message_blocks = blocks.approvers_message(view)
        try:
            self.client.chat_update(
                channel=view.approvers_channel,
                ts=view.approvers_message_ts,
                text=text,
                blocks=message_blocks,
            )
        except SlackApiError as exc:
            log.error("could not update the approvers' message of %s: %s", view.id, exc)

    def _alert(self, view: RequestView, text: str, *, broadcast: bool = True) -> None:
        """A line in the approvers' thread (also shown in the channel when `broadcast`)."""
        try:
            self.client.chat_postMessage(
                channel=view.approvers_channel,
                text=text,
                thread_ts=view.approvers_message_ts,
                reply_broadcast=broadcast and bool(view.approvers_message_ts),
            )
        except SlackApiError as exc:
            log.error("could not alert %s about %s: %s", view.approvers_channel, view.id, exc)

    def _dm(self, view: RequestView, text: str, message_blocks: list | None = None) -> bool:
        try:
            self.client.chat_postMessage(
                channel=view.requester_slack_id, text=text, blocks=message_blocks
            )
        except SlackApiError as exc:
            log.error("could not DM %s about %s: %s", view.requester_slack_id, view.id, exc)
            return False
        return True
