"""A grant and a revoke of one person's access never cross at the target: a revoke waits while
a covering grant's call is in flight, and a grant waits while a covering revoke is pending."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from app.core.models import GrantState
from app.grants.base import GrantContext, Granted, Retry
from app.slack.ids import Ids
from app.workflows import Python
from tests.support.bot import APPROVER
from tests.support.through_slack import approve, target_bot, wait_ended
from tests.support.wait import wait_until


class Target:
    """An in-memory group whose calls can be held at a gate."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.calls: list[str] = []
        self.hold = {"grant": threading.Event(), "revoke": threading.Event()}
        self.gate = {"grant": threading.Event(), "revoke": threading.Event()}
        for gate in self.gate.values():
            gate.set()

    def grant(self, ctx: GrantContext) -> Granted:
        self._pass("grant")
        who = str(ctx.user.email)
        had = who in self.members
        self.members.add(who)
        return Granted(undo={"member": who}, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        self._pass("revoke")
        self.members.discard(ctx.undo["member"])

    def _pass(self, event: str) -> None:
        self.calls.append(event)
        self.hold[event].set()
        assert self.gate[event].wait(20)

    def strategy(self) -> Python:
        return Python(
            grant=self.grant,
            revoke=self.revoke,
            retry=Retry(attempts=2, backoff=timedelta(milliseconds=200)),
        )


def test_a_revoke_waits_for_a_covering_grant_in_flight(bot_factory) -> None:
    target = Target()
    bot = target_bot(
        bot_factory, target.strategy(), durations=[timedelta(seconds=4), timedelta(minutes=5)]
    )
    short = approve(bot, timedelta(seconds=4))
    target.gate["grant"].clear()
    target.hold["grant"].clear()
    request, _ = bot.request_access(resource="target", duration=timedelta(minutes=5))
    bot.click(APPROVER, Ids.APPROVE, request)
    assert target.hold["grant"].wait(10)  # the second grant's call is in flight
    wait_until(lambda: bot.grant_of(short).state == GrantState.REVOKING, what="the first to expire")
    time.sleep(1.5)  # the revoke is due, and waits
    assert "revoke" not in target.calls

    target.gate["grant"].set()
    first = wait_ended(bot, short)
    assert first.kept == "another_grant"
    assert "revoke" not in target.calls and target.members == {"alice@example.com"}
    assert bot.grant_of(request).state == GrantState.ACTIVE


def test_a_grant_waits_for_a_covering_revoke_pending(bot_factory) -> None:
    target = Target()
    bot = target_bot(
        bot_factory, target.strategy(), durations=[timedelta(seconds=2), timedelta(minutes=5)]
    )
    target.gate["revoke"].clear()
    short = approve(bot, timedelta(seconds=2))
    assert target.hold["revoke"].wait(10)  # expired: its revoke call is in flight

    request, _ = bot.request_access(resource="target", duration=timedelta(minutes=5))
    bot.click(APPROVER, Ids.APPROVE, request)
    time.sleep(1.5)
    assert target.calls == ["grant", "revoke"]  # the new grant waits for the revoke

    target.gate["revoke"].set()
    wait_ended(bot, short)
    later = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.ACTIVE and g,
        what="the new grant",
    )
    assert target.calls == ["grant", "revoke", "grant"]
    assert target.members == {"alice@example.com"} and not later.held_before


def test_a_failing_expiry_revoke_does_not_hold_up_a_new_grant(bot_factory) -> None:
    """The old grant's revoke keeps failing: the new grant goes ahead, and the old revoke's
    next attempt then finds the access covered and sends nothing."""
    target = Target()
    failing = {"on": True}
    real_revoke = target.revoke

    def revoke(ctx: GrantContext) -> None:
        if failing["on"]:
            target.calls.append("revoke-failed")
            raise RuntimeError("target down")
        real_revoke(ctx)

    strategy = Python(
        grant=target.grant,
        revoke=revoke,
        retry=Retry(attempts=2, backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=2)),
    )
    bot = target_bot(bot_factory, strategy, durations=[timedelta(seconds=2), timedelta(minutes=5)])
    short = approve(bot, timedelta(seconds=2))
    wait_until(lambda: "revoke-failed" in target.calls, what="the expiry's revoke to fail")

    long = approve(bot, timedelta(minutes=5))  # not held up by the failing revoke
    failing["on"] = False
    first = wait_ended(bot, short)
    assert first.kept == "another_grant"
    assert "revoke" not in target.calls and target.members == {"alice@example.com"}
    assert bot.grant_of(long).state == GrantState.ACTIVE
