"""Bolt listeners, one module per kind. They translate between Slack and the core, nothing more."""

from __future__ import annotations

from slack_bolt import App

from app.core.requests import AccessRequests
from app.slack.listeners import actions, commands, views
from app.workflows.loader import Registry


def register(app: App, *, requests: AccessRequests, registry: Registry) -> None:
    commands.register(app, registry=registry)
    views.register(app, requests=requests, registry=registry)
    actions.register(app, requests=requests, registry=registry)
