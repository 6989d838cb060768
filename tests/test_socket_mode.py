"""Socket Mode, end to end: the real runtime and Slack's own Socket Mode client, against a fake
Slack that serves apps.connections.open and a WebSocket on 127.0.0.1. The same loop as over
HTTP (/access, the modal, Approve, expiry), across a reconnect Slack asks for and a dropped
connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.core.models import GrantState, RequestState
from app.slack.ids import Ids
from tests.support.bot import APPROVER, REQUESTER, Bot
from tests.support.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.support.fake_socket_mode import FakeSocketMode, SocketModeSender
from tests.support.wait import wait_until
from tests.test_server_and_cli import REPO, _free_port
from tests.test_workflow_loader import SHIPPED_ENV


@pytest.fixture
def socket() -> Iterator[FakeSocketMode]:
    fake = FakeSocketMode()
    fake.start()
    yield fake
    fake.stop()


def test_request_approve_and_expiry_through_socket_mode_with_reconnects(
    bot_factory: Callable[..., Bot], socket: FakeSocketMode
) -> None:
    bot = bot_factory(socket=socket, socket_mode_ping_seconds=1.0)
    socket.wait_for_connections(1)
    assert isinstance(bot.sender, SocketModeSender)

    # /access opens the modal
    assert bot.sender.command(REQUESTER).status_code == 200
    bot.slack.wait_for("views.open")

    # Slack rotates the connection: the request goes over the new one
    socket.ask_to_reconnect()
    socket.wait_for_connections(2)
    request, post = bot.request_access(duration=timedelta(seconds=1))
    assert post.buttons() == ["Approve", "Deny"]

    # Slack closes the connection: the client reconnects by itself
    socket.close_current()
    socket.wait_for_connections(3)
    bot.click(APPROVER, Ids.APPROVE, request)

    # the connection dies without a word: no pong comes back, so the client replaces it
    socket.drop()
    socket.wait_for_connections(4, timeout=20)

    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.REVOKED and g,
        timeout=30,
        what="the grant to be made, to expire and to be revoked",
    )
    assert grant.end_reason == "expired"
    assert bot.requests()[0].state == RequestState.APPROVED
    assert [e["event"] for e in bot.webhook.events] == ["grant", "revoke"]
    bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "has ended" in c.text()
    )
    assert len(bot.slack.calls_to("apps.connections.open")) == 4, "one ticket per connection"
    assert max(bot.sender.ack_seconds) < 3, bot.sender.ack_seconds  # Slack's ack deadline
    assert socket.pings > 0  # answered with pongs; the client replaces a silent connection


def test_socket_mode_serves_health_and_metrics(
    bot_factory: Callable[..., Bot], socket: FakeSocketMode
) -> None:
    bot = bot_factory(socket=socket)
    socket.wait_for_connections(1)

    assert httpx.get(bot.url + "/readyz").status_code == 200
    assert "accessbot_grants_overdue 0.0" in httpx.get(bot.url + "/metrics").text
    assert httpx.post(bot.url + "/slack/events").status_code == 404, "no HTTP Slack endpoint"


def test_accessbot_serve_in_socket_mode_with_a_metrics_port(
    tmp_path: Path, database_url: str, fake_slack: FakeSlack, socket: FakeSocketMode
) -> None:
    fake_slack.socket_mode_url = lambda: socket.url
    metrics_port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,  # and no SLACK_SIGNING_SECRET: Socket Mode needs none
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "WORKFLOWS_DIR": str(REPO / "workflows"),
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
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        socket.wait_for_connections(1)
        wait_until(lambda: _ready(base), timeout=30, what="/readyz on METRICS_PORT")
        assert SocketModeSender(socket).command(REQUESTER).status_code == 200
        fake_slack.wait_for("views.open")
        assert "accessbot_slack_api_calls_total" in httpx.get(base + "/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Slack: Socket Mode (SLACK_APP_TOKEN is set); no public URL is needed" in output
    assert f"health and metrics on http://127.0.0.1:{metrics_port}" in output
    wait_until(lambda: all(c.closed.is_set() for c in socket.connections), what="the socket closed")


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
