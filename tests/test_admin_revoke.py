"""`accessbot grants revoke` and the admin commands, run as an operator would."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.models import Grant, GrantState
from app.db.session import make_engine, make_session_factory
from tests.support.bot import REQUESTER, WEBHOOK_SECRET, insert_active_grant
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import SIGNING_SECRET
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_server_and_cli import run_cli

WORKFLOW = """\
from datetime import timedelta
from app.workflows import Resource, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel="CAPPROVALS",
    approvers=["UAPPROVER1"],
    durations=[timedelta(minutes=15)],
    resources=[Resource(id="orders-db", name="Orders DB (read-only)",
                        grant=Webhook(url="{url}", secret="{secret}", timeout=2))],
)
"""


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url, pool_size=1))


@pytest.fixture
def env(
    tmp_path: Path, database_url: str, fake_slack: FakeSlack, webhook: WebhookReceiver
) -> dict[str, str]:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "production.py").write_text(
        WORKFLOW.format(url=webhook.url, secret=WEBHOOK_SECRET)
    )
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(workflows),
    }


def test_grants_revoke_revokes_through_the_strategy_and_tells_the_user(
    tmp_path: Path,
    env: dict[str, str],
    sessions: sessionmaker[Session],
    fake_slack: FakeSlack,
    webhook: WebhookReceiver,
) -> None:
    grant = insert_active_grant(sessions, expires_in=timedelta(minutes=10))
    other = insert_active_grant(sessions, expires_in=timedelta(minutes=10))

    result = run_cli(
        "grants",
        "revoke",
        str(grant.request_id)[:8],
        "--reason",
        "laptop stolen",
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "revoked Orders DB (read-only) from alice@example.com" in result.stdout
    (revoke,) = webhook.events_of("revoke")
    assert revoke["request_id"] == str(grant.request_id)
    with sessions() as session:
        stored = session.get_one(Grant, grant.id)
        untouched = session.get_one(Grant, other.id)
    assert stored.state == GrantState.REVOKED and stored.end_note == "laptop stolen"
    assert stored.ended_by.startswith("cli:")
    assert untouched.state == GrantState.ACTIVE
    dm = fake_slack.wait_for("chat.postMessage", channel=REQUESTER)[0]
    assert "was revoked by cli:" in dm.text() and "Reason: laptop stolen" in dm.text()


def test_grants_revoke_refuses_unknown_and_ambiguous_ids(
    tmp_path: Path, env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    insert_active_grant(sessions, expires_in=timedelta(minutes=10))

    unknown = run_cli("grants", "revoke", "00000000", "--reason", "x", env=env, cwd=tmp_path)
    short = run_cli("grants", "revoke", "abc", "--reason", "x", env=env, cwd=tmp_path)
    no_reason = run_cli("grants", "revoke", "00000000", env=env, cwd=tmp_path)

    assert (
        unknown.returncode == 1
        and "no grant or request id starts with '00000000'" in unknown.stderr
    )
    assert short.returncode == 1 and "at least the first 8 characters" in short.stderr
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr


def test_grants_list_and_audit_export_through_the_command(
    tmp_path: Path, env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    grant = insert_active_grant(sessions, expires_in=timedelta(minutes=10))

    listing = run_cli("grants", "list", "--active", "--json", env=env, cwd=tmp_path)
    table = run_cli("grants", "list", env=env, cwd=tmp_path)
    run_cli("grants", "revoke", str(grant.id), "--reason", "done", env=env, cwd=tmp_path)
    export = run_cli("audit", "export", "--format", "jsonl", env=env, cwd=tmp_path)

    (row,) = json.loads(listing.stdout)
    assert row["grant_id"] == str(grant.id) and row["state"] == "active"
    assert "alice@example.com" in table.stdout and "1 grant" in table.stdout
    events = [json.loads(line)["event"] for line in export.stdout.splitlines()]
    assert events == ["revoke_requested", "revoked"]
