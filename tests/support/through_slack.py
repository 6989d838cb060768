"""One workflow with one resource, driven through Slack: request, approve, wait for expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from app.core.models import AccessRequest, GrantState
from app.grants.base import GrantStrategy
from app.slack.ids import Ids
from app.workflows import Resource, Workflow
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, REQUESTER, Bot
from tests.support.wait import wait_until

RESOURCE = "target"


def target_bot(
    bot_factory: Callable[..., Bot], grant: GrantStrategy, *, durations: list[timedelta]
) -> Bot:
    workflow = Workflow(
        name="targets",
        approvers_channel=APPROVERS_CHANNEL,
        approvers=[APPROVER],
        durations=durations,
        resources=[Resource(id=RESOURCE, name="The target", grant=grant)],
    )
    return bot_factory(workflows=[workflow])


def approve(bot: Bot, duration: timedelta, user: str = REQUESTER) -> AccessRequest:
    """Request `duration` of access as `user`, approve it, wait until it is active."""
    request, _ = bot.request_access(user, resource=RESOURCE, duration=duration)
    bot.click(APPROVER, Ids.APPROVE, request)
    wait_until(
        lambda: (g := bot.grant_of(request)) is not None and g.state == GrantState.ACTIVE,
        what="the grant to be active",
    )
    return request


def wait_ended(bot: Bot, request: AccessRequest, timeout: float = 30) -> Any:
    return wait_until(
        lambda: (g := bot.grant_of(request)) is not None and g.state == GrantState.REVOKED and g,
        what="the grant to be revoked at expiry",
        timeout=timeout,
    )


def dms(bot: Bot, user: str = REQUESTER) -> list[str]:
    return [c.text() for c in bot.slack.dms_to(user)]
