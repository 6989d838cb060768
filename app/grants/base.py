"""What every grant strategy receives and promises."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable


class GrantError(Exception):
    """A grant or revoke call did not succeed; it will be retried under the strategy's Retry.

    The message is shown to people (the requester, the approvers): keep secrets out of it.
    `answer`, what the target said, goes to the audit log alone, clipped and sanitised."""

    def __init__(self, message: str, *, answer: str | None = None) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff: `backoff`, then twice that, ... never more than `max_backoff`.

    A grant is attempted `attempts` times before it is marked failed. A revoke is never given up
    (access must not be left behind): after `attempts` failures the approvers are alerted, and
    it goes on being retried every `max_backoff` at most.
    """

    attempts: int = 5
    backoff: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(minutes=5)

    def delay(self, failures: int) -> timedelta:
        exponent = max(failures - 1, 0)
        delay = self.backoff * (2 ** min(exponent, 30))
        return min(delay, self.max_backoff)


@dataclass(frozen=True)
class Env:
    """A secret read from an environment variable when it is used, never written in a workflow."""

    name: str

    def resolve(self) -> str:
        value = os.environ.get(self.name)
        if value is None:
            raise GrantError(f"environment variable {self.name} is not set")
        return value


Secret = str | Env


def resolve_secret(secret: Secret) -> str:
    return secret.resolve() if isinstance(secret, Env) else secret


@dataclass(frozen=True)
class GrantUser:
    slack_id: str
    email: str | None
    name: str | None = None


@dataclass(frozen=True)
class GrantContext:
    """Everything a strategy needs to give or take back one grant."""

    event: Literal["grant", "revoke"]
    request_id: uuid.UUID
    grant_id: uuid.UUID
    workflow: str
    resource: str
    resource_name: str
    user: GrantUser
    expires_at: datetime
    approved_by: str | None
    justification: str = field(default="", repr=False)
    # Unique per event, the same on every retry of it: receivers de-duplicate with it.
    event_id: str = ""
    # On revoke: what the grant call returned in `Granted.undo` (empty for a grant recorded
    # before strategies could return it). Revoke exactly this, not what the workflow says now.
    undo: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Granted:
    """What `grant()` may return (returning None is fine too).

    `undo`: what revoke needs to take back exactly this access (a login, a principal and a
    permission set, a group id): stored on the grant and handed back in `GrantContext.undo`, so
    an edit of the workflow file cannot make a revoke miss. Plain strings only.
    `already_had`: the person had this access before the grant; the engine then never calls
    revoke for it (access held before accessbot is never taken away) and tells them so.
    """

    undo: Mapping[str, str] = field(default_factory=dict)
    already_had: bool = False


# How a Slack user is known to a target: a dict keyed by Slack user ID or email, or a function.
IdentityMap = Mapping[str, str] | Callable[[GrantUser], str | None]


def identity_map_problem(name: str, mapping: object) -> str | None:
    """Why `mapping` cannot map Slack users, or None when it can (None itself is fine)."""
    if mapping is None or isinstance(mapping, Mapping) or callable(mapping):
        return None
    return f"{name} must be a dict (Slack user ID or email -> name) or a function of the user"


def map_identity(mapping: IdentityMap | None, user: GrantUser, what: str) -> str:
    """`user`'s name on the target: from `mapping` when given, else their email address."""
    found: object
    if mapping is None:
        found = user.email
    elif isinstance(mapping, Mapping):
        found = mapping.get(user.slack_id) or (mapping.get(user.email) if user.email else None)
    else:
        try:
            found = mapping(user)
        except Exception as exc:  # the policy author's code
            name = getattr(mapping, "__name__", type(mapping).__name__)
            raise GrantError(f"{name}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(found, str) or not found:
        who = user.email or user.slack_id
        source = "no email address" if mapping is None else "no entry in the workflow's mapping"
        raise GrantError(f"no {what} for {who}: {source}")
    return found


@runtime_checkable
class GrantStrategy(Protocol):
    """Grant and revoke must be idempotent: a call may be repeated after a lost answer, and a
    grant that failed for good is revoked in case it applied.

    `grant` may return `Granted` (what undoes it, whether the access was there already).

    Optional attributes the engine reads: `deadline` (seconds one call may take in all; 10 by
    default), `max_in_flight` (calls in flight at once to this strategy's target) and
    `in_flight_key` (a string naming the target, shared by strategies that reach the same one).
    """

    retry: Retry

    def grant(self, ctx: GrantContext) -> Granted | None: ...

    def revoke(self, ctx: GrantContext) -> None: ...

    def describe(self) -> str: ...
