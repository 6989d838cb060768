"""SIGTERM during a revoke: Slack gets 503, the call in flight finishes within the grace period
or is handed back for the next instance, and the process exits 0. A real `accessbot serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from app.core.models import Grant, GrantState
from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from tests.support.bot import REQUESTER, Bot, insert_active_grant
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, SlackSender
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_server_and_cli import REPO, _free_port

WORKFLOW = """
from datetime import timedelta
from app.workflows import Resource, Retry, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel="CAPPROVALS",
    approvers=["UAPPROVER1"],
    durations=[timedelta(minutes=15)],
    resources=[
        Resource(
            id="orders-db",
            name="Orders DB (read-only)",
            grant=Webhook(
                url={url!r},
                secret="webhook-secret",
                timeout=10.0,
                retry=Retry(attempts=3, backoff=timedelta(milliseconds=200)),
            ),
        )
    ],
)
"""


def serve(
    tmp_path: Path, *, database_url: str, slack: FakeSlack, webhook: WebhookReceiver, grace: float
) -> tuple[subprocess.Popen[str], int]:
    (tmp_path / "workflows").mkdir(exist_ok=True)
    (tmp_path / "workflows" / "production.py").write_text(WORKFLOW.format(url=webhook.url))
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(tmp_path / "workflows"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "SHUTDOWN_GRACE_SECONDS": str(grace),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def revoke_in_flight(webhook: WebhookReceiver) -> bool:
    return any(e["event"] == "revoke" for e in webhook.attempts)


def test_sigterm_lets_the_revoke_in_flight_finish_and_refuses_slack_meanwhile(
    tmp_path: Path,
    database_url: str,
    fake_slack: FakeSlack,
    webhook: WebhookReceiver,
    bot_factory: Callable[..., Bot],
) -> None:
    upgrade(database_url)
    sessions = make_session_factory(make_engine(database_url, pool_size=2))
    grant = insert_active_grant(sessions, expires_in=timedelta(seconds=-1))
    webhook.hang_next(1, seconds=3)  # the revoke takes 3 s; the grace is 10 s
    process, port = serve(
        tmp_path, database_url=database_url, slack=fake_slack, webhook=webhook, grace=10
    )
    try:
        wait_until(lambda: revoke_in_flight(webhook), timeout=30, what="the revoke call")
        process.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        slack = SlackSender(f"http://127.0.0.1:{port}")
        refused = wait_until(
            lambda: (r := slack.command(REQUESTER)).status_code == 503 and r,
            timeout=5,
            what="Slack requests refused with 503",
        )
        assert refused.text == "shutting down\n"
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    took = time.monotonic() - sent_at

    assert process.returncode == 0, output
    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    with sessions() as session:
        stored = session.get(Grant, grant.id)
        assert stored is not None
        assert stored.state == GrantState.REVOKED and stored.lease_owner is None
    assert "SIGTERM: finishing work in flight (at most 10 s)" in output
    assert fake_slack.calls_to("views.open") == [], "nothing started after SIGTERM"
    sessions.kw["bind"].dispose()


def test_sigterm_hands_back_a_revoke_past_the_grace_and_the_next_instance_finishes_it(
    tmp_path: Path,
    database_url: str,
    fake_slack: FakeSlack,
    webhook: WebhookReceiver,
    bot_factory: Callable[..., Bot],
) -> None:
    upgrade(database_url)
    sessions = make_session_factory(make_engine(database_url, pool_size=2))
    grant = insert_active_grant(sessions, expires_in=timedelta(seconds=-1))
    webhook.hang_next(1, seconds=8)  # longer than the grace (1 s), shorter than the timeout
    process, _ = serve(
        tmp_path, database_url=database_url, slack=fake_slack, webhook=webhook, grace=1
    )
    try:
        wait_until(lambda: revoke_in_flight(webhook), timeout=30, what="the revoke call")
        process.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    took = time.monotonic() - sent_at

    assert process.returncode == 0, output
    assert took < 5, f"exited {took:.1f} s after SIGTERM, with a 1 s grace"
    assert "handed back 1 unfinished grant(s)" in output
    with sessions() as session:
        stored = session.get(Grant, grant.id)
        assert stored is not None and stored.state == GrantState.REVOKING
        assert stored.lease_owner is None and stored.lease_until is None

    # The next instance takes it over at once, not when the lease would have run out (40 s).
    bot = bot_factory()
    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, timeout=10, what="the takeover")
    sessions.kw["bind"].dispose()
