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


class Directory(Protocol):
    """Who people are (Slack users.info)."""

    def person(self, slack_id: str) -> Person: ...


class Notifier(Protocol):
    """Tells people what happened. Every method is called after the change was committed."""

    def request_submitted(self, view: RequestView) -> MessageRef | None:
        """Confirm to the requester; post the request to the approvers. Returns that post."""
        ...

    def request_auto_approved(self, view: RequestView) -> MessageRef | None:
        """Post an FYI (no buttons) to the approvers. Returns that post."""
        ...

    def request_decided(self, view: RequestView) -> None: ...

    def grant_activated(self, view: RequestView) -> None: ...

    def grant_failed(self, view: RequestView) -> None: ...

    def grant_ended(self, view: RequestView) -> None: ...

    def revoke_failing(self, view: RequestView) -> None: ...


class Wakeups(Protocol):
    """Asks to be woken at a time (the scheduler); the database stays the source of truth."""

    def wake_at(self, when: datetime) -> None: ...


class NoWakeups:
    def wake_at(self, when: datetime) -> None:
        return None
