"""A channel whose members approve must be closed: `workflows check` and `serve` refuse a
public or Slack Connect one unless the workflow opts in, and say why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import SIGNING_SECRET
from tests.test_server_and_cli import REPO, run_cli

CHANNEL_MEMBERS_APPROVE = """\
from datetime import timedelta
from app.workflows import Resource, Webhook, Workflow

workflow = Workflow(
    name="ops",
    approvers_channel="COPS",
    durations=[timedelta(minutes=15)],
    resources=[Resource(id="db", name="DB", grant=Webhook(url="https://x", secret="s"))],{extra}
)
"""
NAMED_APPROVERS = CHANNEL_MEMBERS_APPROVE.replace(
    'approvers_channel="COPS",', 'approvers_channel="COPS",\n    approvers=["U0AAA"],'
)


def write(tmp_path: Path, source: str, extra: str = "") -> Path:
    directory = tmp_path / "workflows"
    directory.mkdir(exist_ok=True)
    (directory / "ops.py").write_text(source.replace("{extra}", extra))
    return directory


def check(directory: Path, slack: FakeSlack | None) -> subprocess.CompletedProcess[str]:
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.api_url} if slack else {}
    return run_cli("workflows", "check", "--dir", str(directory), env=env, cwd=directory)


@pytest.mark.parametrize(
    "info,why",
    [
        ({"is_private": False}, "is public"),
        ({"is_private": True, "is_ext_shared": True}, "is shared with another organisation"),
        ({"is_private": True, "is_pending_ext_shared": True}, "is shared with another"),
    ],
)
def test_check_refuses_an_open_channel_whose_members_approve(
    tmp_path: Path, fake_slack: FakeSlack, info: dict[str, bool], why: str
) -> None:
    fake_slack.channel_info["COPS"] = info
    result = check(write(tmp_path, CHANNEL_MEMBERS_APPROVE), fake_slack)
    assert result.returncode == 1, result.stdout
    assert "ops.py:4: workflow 'ops': approvers_channel COPS " + why in result.stdout
    assert "anyone who can join it could approve" in result.stdout


def test_check_accepts_a_private_channel_named_approvers_or_an_explicit_opt_in(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    assert check(write(tmp_path, CHANNEL_MEMBERS_APPROVE), fake_slack).returncode == 0
    fake_slack.channel_info["COPS"] = {"is_private": False}
    assert check(write(tmp_path, NAMED_APPROVERS), fake_slack).returncode == 0
    opted_in = write(tmp_path, CHANNEL_MEMBERS_APPROVE, "\n    allow_open_approvers_channel=True,")
    result = check(opted_in, fake_slack)
    assert result.returncode == 0, result.stdout


def test_check_refuses_a_channel_it_cannot_look_up(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.channel_info["COPS"] = {"error": "channel_not_found"}
    result = check(write(tmp_path, CHANNEL_MEMBERS_APPROVE), fake_slack)
    assert result.returncode == 1 and "channel_not_found" in result.stdout


def test_check_without_a_token_says_channels_were_not_checked(tmp_path: Path) -> None:
    result = check(write(tmp_path, CHANNEL_MEMBERS_APPROVE), None)
    assert result.returncode == 0
    assert "approvers' channels were not checked" in result.stdout


def test_serve_refuses_to_start_with_a_public_approvers_channel(
    tmp_path: Path, database_url: str, fake_slack: FakeSlack
) -> None:
    fake_slack.channel_info["COPS"] = {"is_private": False}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(write(tmp_path, CHANNEL_MEMBERS_APPROVE)),
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "approvers_channel COPS is public" in result.stderr
    assert "refusing to start" in result.stderr
