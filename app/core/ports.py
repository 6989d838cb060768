"""What the core needs from the outside world, as small interfaces. Slack implements most."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from app.core.views import RequestView

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Person:
    slack_id: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str


class DirectoryError(Exception):
    """The directory could not answer (an API error); callers fail closed."""


class Directory(Protocol):
    """Who people are, and who belongs to groups and channels (Slack's users and usergroups)."""

    def person(self, slack_id: str) -> Person: ...

    def user_id_by_email(self, email: str) -> str | None: ...

    def usergroup_members(self, group_id: str) -> list[str]: ...

    def channel_members(self, channel_id: str) -> list[str]: ...


class Notifier(Protocol):
    """Tells people what happened. Every method is called after the change was committed."""

    def request_submitted(self, view: RequestView) -> MessageRef | None:
        """Confirm to the requester; post the request to the approvers. Returns that post."""
        ...

    def request_auto_decided(self, view: RequestView) -> MessageRef | None:
        """Post an FYI (no buttons) to the approvers; tell the requester of a denial."""
        ...

    def post_to_approvers(self, view: RequestView) -> MessageRef | None:
        """Only the approvers' message, for a request stored but never posted."""
        ...

    def request_decided(self, view: RequestView) -> None: ...

    # The three below return whether the requester was told (False: try again later).
    def grant_activated(self, view: RequestView) -> bool: ...

    def grant_failed(self, view: RequestView) -> bool: ...

    def grant_ended(self, view: RequestView) -> bool: ...

    def revoke_failing(self, view: RequestView) -> None: ...

    def request_closed(self, view: RequestView) -> None:
        """Cancelled by the requester, or expired undecided."""
        ...

    def grant_extended(self, view: RequestView, extension: RequestView) -> None:
        """`view` (the original request) now lasts longer, through `extension`."""
        ...

    def extension_failed(self, view: RequestView, extension: RequestView, why: str) -> None: ...

    def expiry_reminder(self, view: RequestView) -> None: ...

    def request_progress(self, view: RequestView) -> None:
        """An approval was recorded; more are needed."""
        ...

    def note(self, view: RequestView, text: str) -> None:
        """Add a line to the approvers' thread (a failing hook, an operator's action)."""
        ...


class Wakeups(Protocol):
    """Asks to be woken at a time (the scheduler); the database stays the source of truth."""

    def wake_at(self, when: datetime) -> None: ...
