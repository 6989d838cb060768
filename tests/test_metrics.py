"""GET /metrics: what an operator alerts on, read as Prometheus would read it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from app.workflows.model import OnCall
from tests.support.bot import APPROVER, REQUESTER, Bot, default_workflows, insert_active_grant
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.prometheus_text import Sample, parse, value
from tests.support.slack_requests import SIGNING_SECRET, SlackSender
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_server_and_cli import REPO, _free_port, _healthy
from tests.test_workflow_loader import SHIPPED_ENV


def scrape(bot: Bot) -> list[Sample]:
    response = httpx.get(bot.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples, types = parse(response.text)
    assert all(name.startswith("accessbot_") for name in types), sorted(types)
    assert all(s.name.startswith("accessbot_") for s in samples)
    return samples


def test_a_request_approved_granted_and_expired_is_counted(bot: Bot) -> None:
    bot.slack.rate_limit_next("chat.update", times=1, retry_after=1)
    request, _ = bot.request_access(duration=timedelta(seconds=1))
    bot.click(APPROVER, Ids.APPROVE, request)
    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.REVOKED and g,
        what="the grant to expire and be revoked",
    )
    bot.slack.wait_for("chat.update")  # after one 429 (updates collapse)

    samples = scrape(bot)

    assert value(samples, "accessbot_requests_total", workflow="production", outcome="approved")
    assert value(samples, "accessbot_grants_active", workflow="production") is None
    assert value(samples, "accessbot_grants_overdue") == 0
    decision = value(samples, "accessbot_request_decision_seconds_count")
    assert decision == 1
    assert value(samples, "accessbot_revocation_lag_seconds_count") == 1
    lag = value(samples, "accessbot_revocation_lag_seconds_sum")
    assert lag is not None and 0 <= lag < 10
    assert grant.ended_at and grant.expires_at
    for operation in ("grant", "revoke"):
        labels = {"strategy": "Webhook", "operation": operation}
        assert value(samples, "accessbot_strategy_calls_total", **labels, result="ok") == 1
        assert value(samples, "accessbot_strategy_call_seconds_count", **labels) == 1
    # the listeners' client (views are opened by Bolt's per-request client) and the outbox's
    assert value(samples, "accessbot_slack_api_calls_total", method="chat.postMessage", result="ok")
    assert value(samples, "accessbot_slack_ratelimited_total", method="chat.update") == 1
    assert value(samples, "accessbot_outbox_depth") == 0
    # bounded labels: no user, request or grant id anywhere
    every_label = {v for s in samples for v in s.labels.values()}
    assert not {REQUESTER, APPROVER, str(request.id), str(grant.id)} & every_label


def test_views_opened_by_listeners_are_counted(bot: Bot) -> None:
    assert bot.sender.command(REQUESTER).status_code == 200
    bot.slack.wait_for("views.open")

    samples = scrape(bot)

    assert value(samples, "accessbot_slack_api_calls_total", method="views.open", result="ok") == 1


def test_grants_past_their_expiry_are_the_overdue_gauge(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver
) -> None:
    webhook.fail_next(100)  # the target refuses every revoke
    bot = bot_factory()
    # Three people: a grant of one person still running would cover the others' access.
    insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-30), requester="UONE")
    insert_active_grant(bot.sessions, expires_in=timedelta(minutes=-5), requester="UTWO")
    insert_active_grant(bot.sessions, expires_in=timedelta(minutes=10), requester="UTHREE")
    bot.runtime.grant_workers.kick()
    wait_until(lambda: bot.audit_events().count("revoke_attempt_failed") >= 1, what="a failure")

    samples = scrape(bot)

    assert value(samples, "accessbot_grants_overdue") == 2
    assert value(samples, "accessbot_grants_active", workflow="production") == 1
    failed = value(
        samples,
        "accessbot_strategy_calls_total",
        strategy="Webhook",
        operation="revoke",
        result="error",
    )
    assert failed is not None and failed >= 1


def test_pending_and_denied_requests_by_workflow(bot: Bot) -> None:
    first, _ = bot.request_access()
    bot.request_access()
    bot.click(APPROVER, Ids.DENY, first)
    wait_until(lambda: bot.requests()[0].state == RequestState.DENIED, what="the denial")

    samples = scrape(bot)

    assert value(samples, "accessbot_requests_total", workflow="production", outcome="denied") == 1
    assert value(samples, "accessbot_requests_pending", workflow="production") == 1


def test_pagerduty_checks_by_result(
    bot_factory: Callable[..., Bot], webhook: WebhookReceiver, fake_pagerduty: FakePagerDuty
) -> None:
    fake_pagerduty.add_user("PALICE", "alice@example.com", "Alice Requester")
    fake_pagerduty.add_oncall("PALICE", "PPAYMENTS", "Payments Primary", 1, "SW", "Weekly")
    (workflow,) = default_workflows(webhook.url)
    bot = bot_factory(
        workflows=[replace(workflow, auto_approve=OnCall(escalation_level=1))],
        pagerduty_api_token=fake_pagerduty.token,
        pagerduty_api_url=fake_pagerduty.base_url,
    )
    response = bot.sender.submit_request(
        REQUESTER, resource="orders-db", justification="INC-1", duration_seconds=900
    )
    assert response.status_code == 200
    wait_until(lambda: bot.webhook.events_of("grant"), what="the on-call grant")

    samples = scrape(bot)

    assert value(samples, "accessbot_pagerduty_checks_total", result="on_call") == 1
    assert value(samples, "accessbot_pagerduty_check_seconds_count") == 1
    auto = value(
        samples, "accessbot_requests_total", workflow="production", outcome="auto_approved"
    )
    assert auto == 1


def test_with_a_metrics_port_metrics_stay_off_the_port_slack_calls(
    tmp_path: Path, database_url: str, fake_slack: FakeSlack
) -> None:
    port, metrics_port = _free_port(), _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(REPO / "workflows"),
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "HOST": "127.0.0.1",
        **SHIPPED_ENV,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: _healthy(metrics_port), timeout=30, what="the metrics listener")
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        public = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert public.status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert "accessbot_grants_overdue" in scraped.text
        assert SlackSender(f"http://127.0.0.1:{metrics_port}").command(REQUESTER).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in output
