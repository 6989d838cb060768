"""A process killed in the middle of a revoke call: another takes the grant over after the lease.

The first instance is a real `accessbot serve` process, killed with SIGKILL while its revoke
call hangs at the target; nothing of it gets to clean up. The second is the in-process bot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from app.core.models import GrantState
from app.db.session import make_engine, make_session_factory
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, REQUESTER, Bot, insert_active_grant
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import SIGNING_SECRET
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[1]

WORKFLOW = """
from datetime import timedelta

from app.workflows import Env, Resource, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel={channel!r},
    approvers=[{approver!r}, {requester!r}],
    durations=[timedelta(minutes=15)],
    resources=[
        Resource(
            id="orders-db",
            name="Orders DB (read-only)",
            grant=Webhook(url={url!r}, secret=Env("CRASH_TEST_SECRET"), timeout=2.0),
        )
    ],
)
"""


def test_an_instance_killed_mid_revoke_is_taken_over_after_its_lease(
    tmp_path: Path,
    database_url: str,
    fake_slack: FakeSlack,
    webhook: WebhookReceiver,
    bot_factory: Callable[..., Bot],
) -> None:
    sessions = make_session_factory(make_engine(database_url, pool_size=1))
    grant = insert_active_grant(sessions, expires_in=timedelta(seconds=-1))
    webhook.hang_next(1, seconds=8)  # the first revoke never answers in time
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "production.py").write_text(
        WORKFLOW.format(
            channel=APPROVERS_CHANNEL, approver=APPROVER, requester=REQUESTER, url=webhook.url
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake_slack.api_url,
            "DATABASE_URL": database_url,
            "WORKFLOWS_DIR": str(workflows),
            "CRASH_TEST_SECRET": webhook.secret,
            "LEASE_MARGIN_SECONDS": "1",
            "PORT": "0",
            "HOST": "127.0.0.1",
        },
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: webhook.attempts, timeout=30, what="the first instance's revoke call")
        with sessions() as session:
            leased = session.get_one(type(grant), grant.id)
            assert leased.state == GrantState.REVOKING and leased.lease_owner
            assert str(process.pid) in leased.lease_owner
            lease_until = leased.lease_until
    finally:
        os.kill(process.pid, signal.SIGKILL)  # mid-call: no cleanup of any kind
        process.wait(timeout=10)
    assert lease_until is not None

    second = bot_factory()

    wait_until(
        lambda: second.grants()[0].state == GrantState.REVOKED,
        timeout=15,
        what="the second instance to revoke the grant",
    )
    revoked = second.grants()[0]
    assert revoked.ended_at is not None and revoked.ended_at >= lease_until  # not before
    revokes = [e for e in webhook.attempts if e["event"] == "revoke"]
    assert len(revokes) == 2 and revokes[0]["event_id"] == revokes[1]["event_id"]
    events = second.audit_events(grant.request_id)
    assert events.count("expired") == 1 and events.count("revoked") == 1
    second.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "has ended" in c.text()
    )
    sessions.kw["bind"].dispose()
    assert httpx.get(second.url + "/healthz").status_code == 200
