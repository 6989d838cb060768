"""Typed refusals of the core. Each carries a message fit to show the person who caused it."""

from __future__ import annotations

from app.core.views import RequestView


class AccessError(Exception):
    """Base class: the operation was refused and nothing changed."""


class InvalidRequest(AccessError):
    """A submitted request breaks the policy. `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class RequestNotFound(AccessError):
    pass


class NotAllowed(AccessError):
    """The actor may not do this (not an approver, or their own request)."""


class AlreadyDecided(AccessError):
    def __init__(self, view: RequestView) -> None:
        self.view = view
        who = f" by <@{view.decided_by}>" if view.decided_by else ""
        super().__init__(f"This request was already {view.state.value}{who}.")
