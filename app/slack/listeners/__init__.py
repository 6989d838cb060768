"""Bolt listeners, one module per kind. They translate between Slack and the core, nothing more."""

from __future__ import annotations

from slack_bolt import App

from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack.listeners import actions, commands, grants, home, views
from app.workflows.loader import Registry


def register(app: App, *, requests: AccessRequests, registry: Registry, clock: Clock) -> None:
    commands.register(app, registry=registry, requests=requests, clock=clock)
    views.register(app, requests=requests, registry=registry)
    actions.register(app, requests=requests, clock=clock)
    grants.register(app, requests=requests, clock=clock)
    home.register(app, requests=requests, clock=clock)
