"""Bolt listeners, one module per kind. They translate between Slack and the core, nothing more."""

from __future__ import annotations

from slack_bolt import App

from app.core.break_glass import BreakGlassAccess
from app.core.ports import Clock
from app.core.requests import AccessRequests
from app.slack.after_ack import AfterAck
from app.slack.listeners import actions, commands, grants, home, views
from app.workflows.loader import Registry


def register(
    app: App,
    *,
    requests: AccessRequests,
    break_glass: BreakGlassAccess,
    registry: Registry,
    clock: Clock,
    after_ack: AfterAck,
) -> None:
    """Each listener validates and acks on Bolt's thread; anything slow goes to `after_ack`."""
    commands.register(
        app,
        registry=registry,
        requests=requests,
        break_glass=break_glass,
        clock=clock,
        after_ack=after_ack,
    )
    views.register(app, requests=requests, registry=registry, after_ack=after_ack)
    actions.register(
        app, requests=requests, break_glass=break_glass, clock=clock, after_ack=after_ack
    )
    grants.register(app, requests=requests, clock=clock, after_ack=after_ack)
    home.register(app, requests=requests, clock=clock, after_ack=after_ack)
