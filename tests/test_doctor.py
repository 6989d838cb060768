"""`accessbot doctor` against the fakes: all ✓ on a good setup, and each mistake named by
exactly one ✗ line, with exit code 1."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.db.migrate import upgrade
from tests.support.bot import APPROVER, APPROVER_2, WEBHOOK_SECRET
from tests.support.fake_pagerduty import FakePagerDuty
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.webhook_receiver import WebhookReceiver

PRODUCTION = """
from app.workflows import OnCall, Resource, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel="CAPPROVALS",
    approvers=["{approver}", "carol@example.com", "SLEADS"],
    auto_approve=OnCall(escalation_policy_ids=["PPAYMENTS"], schedule_ids=["SWEEKLY"]),
    resources=[
        Resource(id="orders-db", name="Orders DB", grant=Webhook(url="{url}", secret="{secret}"))
    ],
)
"""
OPS = """
from app.workflows import Resource, Webhook, Workflow

workflow = Workflow(
    name="ops",
    approvers_channel="COPS",
    resources=[Resource(id="ops-box", name="Ops", grant=Webhook(url="{url}", secret="{secret}"))],
)
"""


@dataclass
class Setup:
    slack: FakeSlack
    pagerduty: FakePagerDuty
    webhook: WebhookReceiver
    env: dict[str, str]
    directory: Path


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    webhook: WebhookReceiver,
) -> Setup:
    directory = tmp_path / "workflows"
    directory.mkdir()
    values = {"approver": APPROVER, "url": webhook.url, "secret": WEBHOOK_SECRET}
    (directory / "production.py").write_text(PRODUCTION.format(**values))
    (directory / "ops.py").write_text(OPS.format(**values))
    fake_slack.usergroups["SLEADS"] = [APPROVER_2]
    fake_slack.channel_members["COPS"] = ["UBOT", APPROVER]
    fake_pagerduty.add_user("PALICE", "alice@example.com", "Alice")
    fake_pagerduty.add_oncall("PALICE", "PPAYMENTS", "Payments", 1, "SWEEKLY", "Weekly")
    upgrade(database_url)
    monkeypatch.chdir(tmp_path)
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "secret",
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(directory),
        "PAGERDUTY_API_TOKEN": fake_pagerduty.token,
        "PAGERDUTY_API_URL": fake_pagerduty.base_url,
    }
    return Setup(fake_slack, fake_pagerduty, webhook, env, directory)


def doctor(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    try:
        main(["doctor"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out.splitlines()


def test_a_good_setup_checks_out(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(setup, monkeypatch, capsys)

    assert code == 0, "\n".join(lines)
    assert lines[-1] == "everything checks out"
    assert all(line.startswith("✓ ") for line in lines[:-1]), "\n".join(lines)
    text = "\n".join(lines)
    for fact in (
        "workflows in",
        "the database schema is at the latest migration",
        "Slack token works: @accessbot in Acme",
        "the bot token carries the 8 scopes of the manifest",
        "approvers' channel CAPPROVALS: the bot is a member",
        "approvers' channel COPS is private",
        "resource 'orders-db': 2 approver(s) resolve",  # U1, carol = U2, SLEADS = U2
        "resource 'ops-box': 1 channel member(s) approve",
        "PagerDuty token works",
        "PagerDuty escalation policy PPAYMENTS exists",
        "PagerDuty schedule SWEEKLY exists",
        "resource 'orders-db': webhook POST",
    ):
        assert fact in text, fact
    pings = [e for e in setup.webhook.attempts if e["event"] == "ping"]
    assert len(pings) == 2, "one signed ping per webhook (the fake checks the signature)"


def _slack_unreachable(s: Setup) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        s.env["SLACK_API_URL"] = f"http://127.0.0.1:{unused.getsockname()[1]}/api/"


def _drop_scope(s: Setup) -> None:
    s.slack.scopes.remove("users:read.email")


def _private_channel_member(s: Setup) -> None:
    s.slack.channel_info["CAPPROVALS"] = {"is_member": False}


def _public_channel(s: Setup) -> None:
    s.slack.channel_info["COPS"] = {"is_private": False}


def _unknown_email(s: Setup) -> None:
    s.slack.users.pop("UAPPROVER2")  # carol@example.com
    s.slack.usergroups["SLEADS"] = []


def _no_group(s: Setup) -> None:
    s.slack.usergroups.pop("SLEADS")


def _empty_channel(s: Setup) -> None:
    s.slack.channel_members["COPS"] = ["UBOT"]


def _bad_pd_token(s: Setup) -> None:
    s.env["PAGERDUTY_API_TOKEN"] = "wrong"


def _no_pd_token(s: Setup) -> None:
    s.env.pop("PAGERDUTY_API_TOKEN")


def _no_policy(s: Setup) -> None:
    s.pagerduty.escalation_policies.clear()


def _no_schedule(s: Setup) -> None:
    s.pagerduty.schedules.clear()


def _bad_slack_token(s: Setup) -> None:
    s.env["SLACK_BOT_TOKEN"] = "xoxb-wrong"


def _not_migrated(s: Setup) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(s.env["DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    engine.dispose()


def _unreachable_database(s: Setup) -> None:
    s.env["DATABASE_URL"] = "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"


def _invalid_workflow(s: Setup) -> None:
    (s.directory / "broken.py").write_text("workflow = Workflow(\n")


def _webhook_refuses(s: Setup) -> None:
    s.webhook.fail_next(1, status=500)


CASES: list[tuple[str, Callable[[Setup], None], str]] = [
    ("missing-scope", _drop_scope, "✗ the bot token lacks scope(s) users:read.email: add them"),
    ("not-a-member", _private_channel_member, "CAPPROVALS: the bot is not a member: invite"),
    ("open-channel", _public_channel, "COPS is public, and its members approve"),
    ("unknown-email", _unknown_email, "approver carol@example.com does not resolve"),
    ("no-usergroup", _no_group, "approver SLEADS does not resolve (no_such_subteam)"),
    ("zero-approvers", _empty_channel, "the members of COPS approve, and there are none"),
    ("pagerduty-token", _bad_pd_token, "✗ the PagerDuty token does not work (HTTP 401)"),
    ("no-pagerduty-token", _no_pd_token, "✗ PAGERDUTY_API_TOKEN is not set"),
    ("no-policy", _no_policy, "escalation policy PPAYMENTS cannot be read (HTTP 404)"),
    ("no-schedule", _no_schedule, "schedule SWEEKLY cannot be read (HTTP 404)"),
    ("slack-token", _bad_slack_token, "✗ SLACK_BOT_TOKEN does not work (invalid_auth)"),
    ("not-migrated", _not_migrated, "schema is at 0007, this code needs 0"),
    ("unreachable-db", _unreachable_database, "is unreachable (OperationalError)"),
    ("invalid-workflow", _invalid_workflow, "broken.py:1: syntax error"),
    ("webhook-refuses", _webhook_refuses, "webhook POST http://127.0.0.1"),
    ("slack-unreachable", _slack_unreachable, "Slack cannot be reached at http://127.0.0.1:"),
]


@pytest.mark.parametrize(("mistake", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_named(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mistake: Callable[[Setup], None],
    expected: str,
) -> None:
    mistake(setup)

    code, lines = doctor(setup, monkeypatch, capsys)

    assert code == 1, "\n".join(lines)
    failures = [line for line in lines if line.startswith("✗ ")]
    assert any(expected in line for line in failures), "\n".join(lines)
    assert lines[-1].endswith("problem(s): fix them, then run `accessbot doctor` again")
    assert "pw@" not in "\n".join(lines), "no credentials in the output"


def test_a_postgres_role_that_does_not_exist_is_named(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (setup.directory / "databases.py").write_text(
        "from app.workflows import PostgresRole, Resource, Workflow\n"
        "workflow = Workflow(name='databases', approvers_channel='CAPPROVALS',\n"
        "    approvers=['UAPPROVER1'], resources=[Resource(id='db', name='DB',\n"
        "    grant=PostgresRole(role='no_such_role', dsn_env='DOCTOR_ADMIN_DSN'))])\n"
    )
    setup.env["DOCTOR_ADMIN_DSN"] = setup.env["DATABASE_URL"]

    code, lines = doctor(setup, monkeypatch, capsys)

    assert code == 1
    (failure,) = [line for line in lines if line.startswith("✗ ")]
    assert failure.startswith("✗ resource 'db': PostgreSQL: GRANT no_such_role TO {email_local}")
    assert "role 'no_such_role' does not exist" in failure


def test_the_scopes_checked_are_the_manifests() -> None:
    import re

    from app.slack.scopes import BOT_SCOPES

    manifest = (Path(__file__).resolve().parents[1] / "manifest.yml").read_text()
    bot = manifest.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    assert re.findall(r"^\s+- ([a-z:.]+)", bot, re.M) == list(BOT_SCOPES)


def test_missing_settings_are_a_failure_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(SystemExit) as exited:
        main(["doctor"])

    assert exited.value.code == 1
    assert capsys.readouterr().out.startswith(
        "✗ missing required settings: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET"
    )
