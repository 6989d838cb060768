"""Grants are carried out with retries, and revoked at expiry whatever happened in between."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update

from app.core.models import Grant, GrantState
from app.grants.base import Retry
from app.grants.webhook import Webhook
from app.slack.ids import Ids
from app.workflows.model import Resource
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


def test_webhook_failing_then_recovering_is_retried_until_granted(bot: Bot) -> None:
    bot.webhook.fail_next(2, status=503)
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)

    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.ACTIVE and g,
        what="the grant to succeed on the third attempt",
    )
    assert len(bot.webhook.attempts) == 3 and len(bot.webhook.events_of("grant")) == 1
    assert grant.attempts == 0 and grant.last_error is None
    assert bot.audit_events(request.id) == [
        "requested",
        "approved",
        "grant_attempt_failed",
        "grant_attempt_failed",
        "granted",
    ]
    failure = bot.audit(request.id)[2]
    assert "answered 503" in failure.detail["error"]
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )


def test_webhook_that_keeps_failing_is_revoked_then_marked_failed_and_the_approvers_told(
    bot: Bot,
) -> None:
    bot.webhook.fail_next(3, status=500)  # every grant attempt; the revoke then succeeds
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)

    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.FAILED and g,
        what="the grant to be marked failed",
    )
    assert grant.attempts == 3 and len(bot.webhook.attempts) == 4
    # The target may have applied a grant whose answer was an error: it is revoked first.
    assert [e["event"] for e in bot.webhook.attempts] == ["grant", "grant", "grant", "revoke"]
    assert [e["event"] for e in bot.webhook.events] == ["revoke"]
    assert grant.due_at is None and grant.lease_owner is None
    alert = bot.slack.wait_for(
        "chat.postMessage",
        channel=APPROVERS_CHANNEL,
        where=lambda c: "failed after 3 attempts" in c.text(),
    )[0]
    assert alert.args["thread_ts"] == request.approvers_message_ts
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granting it failed" in c.text()
    )
    assert "answered 500" in dm[0].text()
    assert bot.audit_events(request.id)[-2:] == ["grant_failed", "revoked"]


def test_webhook_timeout_counts_as_a_failure(bot: Bot) -> None:
    bot.webhook.hang_next(1, seconds=2.0)  # the strategy's timeout is 1 s
    request, _ = bot.request_access()

    bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.ACTIVE,
        what="the grant after a timed-out attempt",
    )
    failure = next(e for e in bot.audit(request.id) if e.event == "grant_attempt_failed")
    assert "did not answer within 1s" in failure.detail["error"]


def test_revoke_failure_is_retried_and_access_is_never_left_behind(bot: Bot) -> None:
    grant = insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-1))
    bot.webhook.fail_next(2, status=502)

    bot.runtime.grant_workers.kick()  # what a commit or the sweep does

    revoked = wait_until(
        lambda: [g for g in bot.grants() if g.state == GrantState.REVOKED],
        what="the revoke to succeed after retries",
    )
    assert revoked[0].id == grant.id
    assert len(bot.webhook.events_of("revoke")) == 1 and len(bot.webhook.attempts) == 3
    assert bot.audit_events(grant.request_id) == [
        "expired",
        "revoke_attempt_failed",
        "revoke_attempt_failed",
        "revoked",
    ]


def test_restart_revokes_grants_that_expired_while_the_bot_was_down(
    bot_factory: Callable[..., Bot],
) -> None:
    first = bot_factory()
    request, _ = first.request_access(duration=timedelta(minutes=15))
    first.click(APPROVER, Ids.APPROVE, request)
    wait_until(lambda: first.webhook.events_of("grant"), what="the grant")
    wait_until(lambda: first.grants()[0].state == GrantState.ACTIVE, what="the active grant")
    first.stop()  # the process goes away; the grant has 15 minutes left
    with first.sessions.begin() as session:  # ...and the bot stays down past its expiry
        expired = Grant.granted_at - timedelta(seconds=1)
        session.execute(update(Grant).values(expires_at=expired, due_at=expired))
    assert first.webhook.events_of("revoke") == []

    second = bot_factory()

    wait_until(lambda: second.webhook.events_of("revoke"), what="the revoke after the restart")
    wait_until(lambda: second.grants()[0].state == GrantState.REVOKED, what="the revoked state")
    second.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "has ended" in c.text()
    )


def test_two_instances_on_one_database_revoke_each_grant_exactly_once(
    bot_factory: Callable[..., Bot],
) -> None:
    first = bot_factory()
    second = bot_factory()
    first.webhook.latency = 0.05  # slow target: the sweeps overlap
    # One grant per person: grants of one person to one target overlap, and only the last
    # of those to expire revokes (tests/test_overlapping_grants.py).
    grants = [
        insert_active_grant(first.sessions, expires_in=timedelta(seconds=-5), requester=f"U{n:04d}")
        for n in range(12)
    ]
    grants += [
        insert_active_grant(first.sessions, expires_in=timedelta(seconds=1), requester=f"V{n:04d}")
        for n in range(4)
    ]
    barrier = threading.Barrier(4)

    def kick(bot: Bot) -> None:
        barrier.wait()
        bot.runtime.grant_workers.kick()

    threads = [threading.Thread(target=kick, args=(b,)) for b in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_until(
        lambda: all(g.state == GrantState.REVOKED for g in first.grants()),
        what="every grant to be revoked",
    )
    revokes = Counter(e["request_id"] for e in first.webhook.events_of("revoke"))
    assert sorted(revokes) == sorted(str(g.request_id) for g in grants)
    # Once each, unless an attempt was recorded as failed (on a loaded machine a call can run
    # past its deadline; its retry is then a second call): never twice by two instances.
    failed = Counter(str(e.request_id) for e in first.audit() if e.event == "revoke_attempt_failed")
    assert {rid: n - failed[rid] for rid, n in revokes.items()} == {
        str(g.request_id): 1 for g in grants
    }
    revoked_audit = Counter(e.grant_id for e in first.audit() if e.event == "revoked")
    assert set(revoked_audit.values()) == {1} and len(revoked_audit) == len(grants)


def test_a_request_whose_routing_never_finished_goes_to_the_approvers(bot: Bot) -> None:
    """The process stopped between storing a request and routing it: nothing is lost."""
    import uuid

    from app.core.models import AccessRequest, RequestState
    from app.core.ports import utcnow

    request_id = uuid.uuid4()
    with bot.sessions.begin() as session:
        session.add(
            AccessRequest(
                id=request_id,
                workflow="production",
                resource_id="orders-db",
                requester_slack_id=REQUESTER,
                requester_email="alice@example.com",
                justification="stored just before a crash",
                duration=timedelta(minutes=15),
                state=RequestState.PENDING,
                created_at=utcnow() - timedelta(minutes=2),
                approvers_channel=APPROVERS_CHANNEL,
                pending_until=utcnow() + timedelta(hours=1),
            )
        )

    bot.runtime.sweep()
    bot.runtime.sweep()

    post = bot.slack.wait_for("chat.postMessage", channel=APPROVERS_CHANNEL)[0]
    assert "stored just before a crash" in post.text()
    assert "Routing did not finish" in post.text()
    assert post.buttons() == ["Approve", "Deny"]
    wait_until(lambda: bot.requests()[0].approvers_message_ts, what="the post to be recorded")
    bot.runtime.sweep()
    time.sleep(0.3)
    assert len(bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)) == 1
    assert bot.audit_events(request_id) == ["routed_to_approvers"]


def test_a_dm_slack_fails_is_delivered_later_exactly_once(bot: Bot) -> None:
    request, _ = bot.request_access()
    bot.slack.fail_next("chat.postMessage", "fatal_error")  # the "granted" DM's first try

    bot.click(APPROVER, Ids.APPROVE, request)

    dms = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, count=2, where=lambda c: "granted until" in c.text()
    )
    assert len(dms) == 2  # the failed try, then the one that went out
    bot.runtime.sweep()
    time.sleep(0.3)
    assert len([c for c in bot.slack.dms_to(REQUESTER) if "granted until" in c.text()]) == 2
    assert bot.runtime.outbox.pending() == 0


def test_messages_written_before_a_crash_are_delivered_by_the_next_start(
    bot_factory: Callable[..., Bot],
) -> None:
    first = bot_factory()
    request, _ = first.request_access()
    first.runtime.sender.stop(grace=5)  # the process dies before its sender runs again
    first.click(APPROVER, Ids.APPROVE, request)
    wait_until(
        lambda: first.grants() and first.grants()[0].state == GrantState.ACTIVE, what="grant"
    )
    assert not [c for c in first.slack.dms_to(REQUESTER) if "granted until" in c.text()]
    assert first.runtime.outbox.pending(request.id) >= 1
    first.stop()

    second = bot_factory()

    second.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )
    update_call = second.slack.wait_for(
        "chat.update", channel=APPROVERS_CHANNEL, where=lambda c: "Access granted until" in c.text()
    )
    assert update_call[0].args["ts"] == request.approvers_message_ts
    wait_until(lambda: second.runtime.outbox.pending() == 0, what="the outbox to drain")


def test_a_live_grant_change_is_announced_once(bot: Bot) -> None:
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, request)
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granted until" in c.text()
    )

    bot.runtime.sweep()
    time.sleep(0.3)

    assert len([c for c in bot.slack.dms_to(REQUESTER) if "granted until" in c.text()]) == 1


def test_a_revoke_that_keeps_failing_is_announced_again_at_growing_intervals(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    retry = Retry(
        attempts=2, backoff=timedelta(milliseconds=50), max_backoff=timedelta(seconds=0.1)
    )
    bot = bot_with(
        resources=[
            Resource(
                id="orders-db",
                name="Orders DB",
                grant=Webhook(url=webhook.url, secret=WEBHOOK_SECRET, timeout=1, retry=retry),
            )
        ]
    )
    webhook.fail_next(10, status=503)
    insert_active_grant(bot.sessions, expires_in=timedelta(minutes=-10))
    bot.runtime.grant_workers.kick()

    wait_until(lambda: bot.webhook.events_of("revoke"), what="the revoke to succeed at last")
    alerts = [
        c
        for c in bot.slack.wait_for(
            "chat.postMessage",
            channel=APPROVERS_CHANNEL,
            count=3,
            where=lambda c: "🚨 Revoking" in c.text(),
        )
    ]
    # After 2, 4 and 8 failures (not after every one): 10 failures, three alerts.
    assert [a.text().split(" has failed ")[1].split(" ")[0] for a in alerts] == ["2", "4", "8"]
    assert all("outlived its expiry by 10 minutes" in a.text() for a in alerts)
    assert all(a.args.get("thread_ts") == "1690000000.000100" for a in alerts)
    time.sleep(0.3)
    assert len([c for c in bot.slack.calls_to("chat.postMessage") if "🚨" in c.text()]) == 3


def test_alerts_come_at_the_threshold_then_at_doubling_counts() -> None:
    from app.core.lifecycle import _alert_now

    assert [n for n in range(1, 50) if _alert_now(n, 5)] == [5, 10, 20, 40]
    assert [n for n in range(1, 10) if _alert_now(n, 1)] == [1, 2, 4, 8]
