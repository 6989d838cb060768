"""The core's Notifier in Slack: what to tell whom, written to the outbox with the change.

Nothing here calls Slack. Each message is rendered now (DMs describe the moment they report)
or at delivery (the approvers' message is always re-rendered from the current state, so several
pending updates of it collapse into one). `app.slack.sender` delivers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.core.models import RequestState
from app.core.outbox import Outbox
from app.core.views import RequestView
from app.slack import blocks
from app.slack import format as fmt
from app.workflows.model import ON_CALL_APPROVERS

# Outbox kinds, read back by app.slack.sender.
POST = "post"  # chat.postMessage of a rendered message (a DM)
POST_REQUEST = "post_request"  # the approvers' message of a request, rendered at delivery
REFRESH = "refresh"  # chat.update of the approvers' message, rendered at delivery
THREAD = "thread"  # a line in the approvers' message thread


class SlackNotifier:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def request_submitted(self, session: Session, view: RequestView) -> None:
        self._dm(session, view, blocks.dm_submitted(view), blocks.dm_submitted_blocks(view))
        self._post_request(session, view)

    def request_auto_decided(
        self, session: Session, view: RequestView, *, announce: bool = True
    ) -> None:
        """The workflow decided alone: an FYI to the approvers (no buttons), unless the rule
        asked for quiet (`OnCall(announce=False)`); tell a denial."""
        if view.state == RequestState.DENIED:
            self._dm(session, view, blocks.dm_denied(view))
            announce = True
        if announce:
            self._post_request(session, view)

    def request_escalated(
        self,
        session: Session,
        view: RequestView,
        to: str,
        waited: timedelta,
        *,
        people: Sequence[str] = (),
        why: str | None = None,
    ) -> None:
        """Re-post a stale request: to another channel, with its buttons; for a user group, a
        line in the approvers' thread, shown in the channel, calling the group; for the
        on-call approvers, a DM with the buttons to each (or a line saying none is)."""
        if to == ON_CALL_APPROVERS:
            text, message_blocks = blocks.escalation_message(view, waited)
            for person in people:
                self.outbox.add(
                    session,
                    conversation=person,
                    kind=POST,
                    payload={"channel": person, "text": text, "blocks": message_blocks},
                    request_id=view.id,
                )
            if not people:
                self._alert(session, view, blocks.escalation_nobody(view, waited, why))
            return
        if to.startswith("S"):
            self._alert(session, view, blocks.escalation_call(view, to, waited))
            return
        text, message_blocks = blocks.escalation_message(view, waited)
        self.outbox.add(
            session,
            conversation=to,
            kind=POST,
            payload={"channel": to, "text": text, "blocks": message_blocks},
            request_id=view.id,
        )

    def request_progress(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)

    def note(self, session: Session, view: RequestView, text: str) -> None:
        """Plain text from the core (a hook's failure: its message is the author's or a
        target's); escaped here, so it can mention nobody and link nowhere."""
        self._alert(session, view, fmt.escape(text))

    def break_glass_unreviewed(
        self, session: Session, view: RequestView, waited: timedelta
    ) -> None:
        """Our own words and the workflow's mention (not a note's escaped text)."""
        self._alert(session, view, blocks.break_glass_unreviewed(view, waited))

    def request_decided(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)
        if view.state == RequestState.DENIED:
            self._dm(session, view, blocks.dm_denied(view))

    def grant_activated(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)
        self._dm(session, view, blocks.dm_granted(view), blocks.dm_granted_blocks(view))

    def grant_progress(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)

    def grant_failed(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)
        self._alert(session, view, blocks.alert_grant_failed(view))
        self._dm(session, view, blocks.dm_grant_failed(view))

    def grant_ended(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)
        if view.end_reason != "expired":
            self._alert(session, view, blocks.note_revoked_early(view), broadcast=False)
        self._dm(session, view, blocks.dm_ended(view))

    def request_closed(self, session: Session, view: RequestView) -> None:
        self._refresh(session, view)
        self._dm(session, view, blocks.dm_closed(view))

    def grant_extended(self, session: Session, view: RequestView, extension: RequestView) -> None:
        self._refresh(session, view)
        self._refresh(session, extension)
        self._dm(session, view, blocks.dm_extended(view, extension), blocks.dm_granted_blocks(view))

    def extension_failed(
        self, session: Session, view: RequestView, extension: RequestView, why: str
    ) -> None:
        self._refresh(session, extension)
        self._alert(session, extension, blocks.dm_extension_failed(view, why), broadcast=False)
        self._dm(session, view, blocks.dm_extension_failed(view, why))

    def expiry_reminder(self, session: Session, view: RequestView) -> None:
        self._dm(session, view, blocks.dm_reminder(view), blocks.dm_reminder_blocks(view))

    def revoke_failing(self, session: Session, view: RequestView, overdue: timedelta) -> None:
        self._refresh(session, view)
        self._alert(session, view, blocks.alert_revoke_failing(view, overdue))

    # -- plumbing --------------------------------------------------------------------------

    def _post_request(self, session: Session, view: RequestView) -> None:
        self.outbox.add(
            session,
            conversation=view.approvers_channel,
            kind=POST_REQUEST,
            payload={},
            request_id=view.id,
        )

    def _refresh(self, session: Session, view: RequestView) -> None:
        """Re-render the approvers' message (at delivery, from the state then)."""
        self.outbox.add(
            session,
            conversation=view.approvers_channel,
            kind=REFRESH,
            payload={},
            request_id=view.id,
            collapse_key=f"refresh:{view.id}",
        )

    def _alert(
        self, session: Session, view: RequestView, text: str, *, broadcast: bool = True
    ) -> None:
        """A line in the approvers' thread (also shown in the channel when `broadcast`)."""
        self.outbox.add(
            session,
            conversation=view.approvers_channel,
            kind=THREAD,
            payload={"text": text, "broadcast": broadcast},
            request_id=view.id,
        )

    def _dm(
        self,
        session: Session,
        view: RequestView,
        text: str,
        message_blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        payload: dict[str, Any] = {"channel": view.requester_slack_id, "text": text}
        if message_blocks is not None:
            payload["blocks"] = message_blocks
        self.outbox.add(
            session,
            conversation=view.requester_slack_id,
            kind=POST,
            payload=payload,
            request_id=view.id,
        )
