"""One bad grant, target or hook never stops or slows the others; a decision is never overridden.

Strategies here misbehave the way real targets do: an error full of binary bytes, an exception
nobody expected, a call that hangs. Each is the problem of its own grant alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.core.models import GrantState, RequestState
from app.grants.base import GrantContext, GrantError, Retry
from app.grants.webhook import Webhook
from app.slack.ids import Ids
from app.workflows.model import Decision, Resource
from tests.support.bot import (
    APPROVER,
    APPROVERS_CHANNEL,
    REQUESTER,
    WEBHOOK_SECRET,
    Bot,
    insert_active_grant,
)
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

POISON = "UPOISON"
QUICK = Retry(attempts=3, backoff=timedelta(milliseconds=300), max_backoff=timedelta(seconds=1))


class Scripted:
    """A strategy whose revoke for POISON's grants does `poison(ctx)`; others succeed."""

    retry = QUICK
    deadline = 0.5

    def __init__(self, poison: Callable[[GrantContext], None]) -> None:
        self.poison = poison
        self.revoked: list[tuple[float, GrantContext]] = []
        self.poison_calls = 0
        self._lock = threading.Lock()

    def grant(self, ctx: GrantContext) -> None:
        return None

    def revoke(self, ctx: GrantContext) -> None:
        if ctx.user.slack_id == POISON:
            with self._lock:
                self.poison_calls += 1
            self.poison(ctx)
        with self._lock:
            self.revoked.append((time.time(), ctx))

    def describe(self) -> str:
        return "scripted target"


def binary_error(ctx: GrantContext) -> None:
    raise GrantError("target answered 500: \x00\x01\x02 binary \udcff body \x00")


def unexpected(ctx: GrantContext) -> None:
    raise KeyError("a bug in the strategy")  # not a GrantError: nobody expected it


def hang(ctx: GrantContext) -> None:
    time.sleep(3)  # far past the 0.5 s deadline


def megabyte(ctx: GrantContext) -> None:
    raise GrantError("x" * 1_000_000)


@pytest.mark.parametrize("poison", [binary_error, unexpected, hang, megabyte])
def test_a_poison_grant_is_retried_alone_while_the_others_are_revoked_on_time(
    bot_with: Callable[..., Bot], poison: Callable[[GrantContext], None]
) -> None:
    strategy = Scripted(poison)
    bot = bot_with(resources=[Resource(id="orders-db", name="Orders DB", grant=strategy)])
    bad = insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-30), requester=POISON)
    good = [
        insert_active_grant(bot.sessions, expires_in=timedelta(seconds=s)) for s in (-1, 0.5, 1)
    ]

    kicked = datetime.now(UTC)
    bot.runtime.grant_workers.kick()

    wait_until(
        lambda: all(g.state == GrantState.REVOKED for g in bot.grants() if g.id != bad.id),
        what="the healthy grants to be revoked",
        timeout=5,
    )
    grants = {g.id: g for g in bot.grants()}
    for grant in good:
        stored = grants[grant.id]
        assert stored.expires_at is not None and stored.ended_at is not None
        assert stored.ended_at >= stored.expires_at  # never before its expiry
        assert stored.ended_at - max(stored.expires_at, kicked) < timedelta(seconds=2)
    wait_until(lambda: strategy.poison_calls >= 2, what="the poison grant to be retried")
    poisoned = next(g for g in bot.grants() if g.id == bad.id)
    assert poisoned.state == GrantState.REVOKING and poisoned.attempts >= 1
    error = poisoned.last_error or ""
    assert error and "\x00" not in error and "\udcff" not in error and len(error) <= 2000
    failures = [e for e in bot.audit(bad.request_id) if e.event == "revoke_attempt_failed"]
    assert failures and "\x00" not in failures[0].detail["error"]


def test_a_hung_target_holds_only_its_own_workers(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    stuck = WebhookReceiver(WEBHOOK_SECRET)
    stuck.hang_next(100, seconds=8)
    stuck.start()
    try:
        bot = bot_with(
            {"grant_workers": 4, "grant_target_max_in_flight": 2},
            resources=[
                Resource(
                    id="orders-db",
                    name="Orders DB",
                    grant=Webhook(url=webhook.url, secret=WEBHOOK_SECRET, timeout=5, retry=QUICK),
                ),
                Resource(
                    id="stuck-db",
                    name="Stuck DB",
                    grant=Webhook(url=stuck.url, secret=WEBHOOK_SECRET, timeout=5, retry=QUICK),
                ),
            ],
        )
        for _ in range(6):
            insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-1), resource="stuck-db")
        healthy = [
            insert_active_grant(bot.sessions, expires_in=timedelta(seconds=0.3 * i))
            for i in range(1, 7)
        ]
        bot.runtime.grant_workers.kick()

        ids = {g.id for g in healthy}
        wait_until(
            lambda: {g.id for g in bot.grants() if g.state == GrantState.REVOKED} >= ids,
            what="every healthy grant to be revoked while the other target hangs",
            timeout=5,
        )
        grants = {g.id: g for g in bot.grants()}
        lags = [grants[g.id].ended_at - grants[g.id].expires_at for g in healthy]  # type: ignore[operator]
        assert max(lags) < timedelta(seconds=1.5), lags
        assert len(stuck.attempts) == 2  # its in-flight limit, however many are due
        assert bot.runtime.grant_workers.in_flight() == {f"webhook:{stuck.base_url}": 2}
    finally:
        stuck.stop()


def test_a_grant_applied_but_answered_500_is_revoked_before_it_is_called_failed(
    bot: Bot,
) -> None:
    bot.webhook.fail_next(3, status=500)  # the target applies nothing it says, but who knows
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(lambda: bot.webhook.events_of("revoke"), what="the compensating revoke")
    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.FAILED and g,
        what="the grant to be failed",
    )
    revoke = bot.webhook.events_of("revoke")[0]
    grants = [e for e in bot.webhook.attempts if e["event"] == "grant"]
    assert revoke["request_id"] == str(request.id)
    # Receivers de-duplicate with event_id: the same on every retry, another for the revoke.
    assert len({e["event_id"] for e in grants}) == 1 and revoke["event_id"] != grants[0]["event_id"]
    failed_dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granting it failed" in c.text()
    )
    assert len(failed_dm) == 1
    assert grant.ended_at is not None


# -- decisions are final ------------------------------------------------------------------


def _blocking_hook(
    decision: Decision,
) -> tuple[Callable[..., Decision], threading.Event, threading.Event]:
    entered, release = threading.Event(), threading.Event()

    def on_request(info: object) -> Decision:
        entered.set()
        release.wait(10)
        return decision

    return on_request, entered, release


def test_a_deny_clicked_while_routing_runs_wins_over_the_hooks_late_approval(
    bot_with: Callable[..., Bot],
) -> None:
    hook, entered, release = _blocking_hook(Decision.approve("the policy says yes"))
    bot = bot_with(on_request=hook)
    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="INC-1", duration_seconds=900
    )
    assert entered.wait(5)
    (request,) = bot.requests()

    response = bot.sender.click(APPROVER, Ids.DENY, str(request.id), channel_id=APPROVERS_CHANNEL)
    assert response.status_code == 200
    wait_until(lambda: bot.requests()[0].state == RequestState.DENIED, what="the deny")
    release.set()

    wait_until(lambda: "route_too_late" in bot.audit_events(request.id), what="the late route")
    time.sleep(0.3)
    assert bot.requests()[0].state == RequestState.DENIED
    assert bot.grants() == [] and bot.webhook.attempts == []
    late = next(e for e in bot.audit(request.id) if e.event == "route_too_late")
    assert late.detail["action"] == "approve" and late.detail["state"] == "denied"


def test_an_approve_clicked_while_routing_runs_wins_over_the_hooks_late_denial(
    bot_with: Callable[..., Bot],
) -> None:
    hook, entered, release = _blocking_hook(Decision.deny("the policy says no"))
    bot = bot_with(on_request=hook)
    bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="INC-2", duration_seconds=900
    )
    assert entered.wait(5)
    (request,) = bot.requests()

    bot.sender.click(APPROVER, Ids.APPROVE, str(request.id), channel_id=APPROVERS_CHANNEL)
    wait_until(lambda: bot.webhook.events_of("grant"), what="the grant")
    release.set()

    wait_until(lambda: "route_too_late" in bot.audit_events(request.id), what="the late route")
    time.sleep(0.3)
    assert bot.requests()[0].state == RequestState.APPROVED
    assert bot.grants()[0].state == GrantState.ACTIVE
    assert "denied" not in bot.audit_events(request.id)


def test_a_hook_that_hangs_sends_the_request_to_the_approvers(
    bot_with: Callable[..., Bot],
) -> None:
    def slow(info: object) -> Decision:
        time.sleep(3)
        return Decision.approve("too late to count")

    bot = bot_with({"hook_deadline_seconds": 0.5}, on_request=slow)
    started = time.monotonic()
    request, post = bot.request_access()

    assert time.monotonic() - started < 2.5
    assert post.buttons() == ["Approve", "Deny"]
    assert "did not finish within 0.5s" in post.text()
    assert request.state == RequestState.PENDING


class HangsForGood:
    """A target that takes one change at a time and never finishes the one it is given."""

    max_in_flight = 1
    deadline = 30.0

    def __init__(self) -> None:
        self.release = threading.Event()

    def grant(self, ctx: GrantContext) -> None:
        return None

    def revoke(self, ctx: GrantContext) -> None:
        self.release.wait(60)

    def describe(self) -> str:
        return "a target that hangs"


def test_a_grant_of_a_removed_resource_is_not_held_up_by_a_full_target(
    bot_with: Callable[..., Bot],
) -> None:
    """Every target is full (its one call hangs); a grant of a resource no workflow defines any
    more belongs to none of them, and is still looked at (within the sweep interval)."""
    target = HangsForGood()
    bot = bot_with(
        {"sweep_interval_seconds": 1.0},
        resources=[Resource(id="orders-db", name="Orders DB", grant=target)],
    )
    try:
        stuck = insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-1))
        bot.runtime.grant_workers.kick()
        wait_until(lambda: bot.runtime.grant_workers.in_flight(), what="the hanging call to start")
        gone = insert_active_grant(
            bot.sessions, expires_in=timedelta(seconds=-1), resource="gone-db"
        )
        bot.runtime.grant_workers.kick()

        def attempted() -> bool:
            grant = next(g for g in bot.grants() if g.id == gone.id)
            return "no longer defined" in (grant.last_error or "")

        wait_until(attempted, what="the removed resource's grant to be attempted", timeout=10)
        assert next(g for g in bot.grants() if g.id == stuck.id).state == GrantState.REVOKING
    finally:
        target.release.set()
