"""What the core needs from the outside world, as small interfaces. Slack implements most."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from app.core.views import RequestView

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Person:
    slack_id: str
    email: str | None
    name: str | None


class DirectoryError(Exception):
    """The directory could not answer (an API error); callers fail closed."""


class Directory(Protocol):
    """Who people are, and who belongs to groups and channels (Slack's users and usergroups)."""

    def person(self, slack_id: str) -> Person: ...

    def user_id_by_email(self, email: str) -> str | None: ...

    def usergroup_members(self, group_id: str) -> list[str]: ...

    def channel_members(self, channel_id: str) -> list[str]: ...


class Notifier(Protocol):
    """Tells people what happened. Every method is called inside the transaction of the change
    it reports, with its session: the messages are stored with the change (an outbox) and
    delivered after the commit, so a crash can neither lose them nor send them for a change
    that rolled back. No method makes a network call."""

    def request_submitted(self, session: Session, view: RequestView) -> None:
        """Confirm to the requester; post the request to the approvers."""
        ...

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
        """A stale request, re-posted to `to` (a channel, a user group, or the on-call
        approvers `people`; `why` there are none) with how long it has waited."""
        ...

    def request_auto_decided(
        self, session: Session, view: RequestView, *, announce: bool = True
    ) -> None:
        """Post an FYI (no buttons) to the approvers; tell the requester of a denial."""
        ...

    def request_decided(self, session: Session, view: RequestView) -> None: ...

    def request_progress(self, session: Session, view: RequestView) -> None:
        """An approval was recorded; more are needed."""
        ...

    def request_closed(self, session: Session, view: RequestView) -> None:
        """Cancelled by the requester, or expired undecided."""
        ...

    def grant_activated(self, session: Session, view: RequestView) -> None: ...

    def grant_progress(self, session: Session, view: RequestView) -> None:
        """An attempt failed and will be retried: keep the approvers' message current."""
        ...

    def grant_failed(self, session: Session, view: RequestView) -> None: ...

    def grant_ended(self, session: Session, view: RequestView) -> None: ...

    def revoke_failing(self, session: Session, view: RequestView, overdue: timedelta) -> None:
        """Revoking keeps failing; the access has outlived its expiry by `overdue`."""
        ...

    def grant_extended(self, session: Session, view: RequestView, extension: RequestView) -> None:
        """`view` (the original request) now lasts longer, through `extension`."""
        ...

    def extension_failed(
        self, session: Session, view: RequestView, extension: RequestView, why: str
    ) -> None: ...

    def expiry_reminder(self, session: Session, view: RequestView) -> None: ...

    def note(self, session: Session, view: RequestView, text: str) -> None:
        """Add a line to the approvers' thread (a failing hook, an operator's action)."""
        ...

    def break_glass_unreviewed(
        self, session: Session, view: RequestView, waited: timedelta
    ) -> None:
        """Announce again, with the workflow's alert, a break-glass grant nobody reviewed."""
        ...


class Wakeups(Protocol):
    """Asks to be woken at a time (the scheduler); the database stays the source of truth."""

    def wake_at(self, when: datetime) -> None: ...


class CallMetrics(Protocol):
    """Where grant strategy calls are counted (Prometheus in the runtime)."""

    def strategy_call(self, strategy: str, operation: str, result: str, seconds: float) -> None: ...


class NoMetrics:
    def strategy_call(self, strategy: str, operation: str, result: str, seconds: float) -> None:
        return None
