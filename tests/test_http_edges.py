"""The HTTP edge: /access whatever words its fields carry; oversized and unsigned requests cost
nothing and log one line that holds none of the body; log lines nobody can forge."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import socket
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest

from app.logs import TEXT_FORMAT, JsonFormatter, SafeTextFormatter, configure_logging
from tests.support.bot import REQUESTER, Bot
from tests.support.slack_requests import SIGNING_SECRET

FORGED = "x\n2026-11-27 21:00:00,000 INFO app.core.requests: request 42 approved by UADMIN"


def signed_headers(body: bytes, *, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's v0 signature, from its documentation: HMAC-SHA256 of `v0:{ts}:{body}`."""
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }


def slash_command(**fields: str) -> bytes:
    form = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "team_domain": "acme",
        "channel_id": "C0PAYLOAD",
        "channel_name": "general",
        "user_id": REQUESTER,
        "user_name": "alice",
        "command": "/access",
        "text": "",
        "api_app_id": "A0APP",
        "response_url": "https://hooks.slack.invalid/commands/1",
        "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
        **fields,
    }
    return urlencode(form).encode()


@pytest.mark.parametrize(
    "field,value",
    [
        ("channel_name", "payload-team"),
        ("user_name", "payload.alice"),
        ("team_domain", "payloadco"),
        ("response_url", "https://hooks.slack.invalid/commands/payload"),
        ("trigger_id", "payload-trigger"),
        ("enterprise_name", "Payload Holdings"),
        ("enterprise_name", "payload"),
    ],
)
def test_access_opens_the_modal_whatever_word_a_field_carries(
    bot: Bot, field: str, value: str
) -> None:
    body = slash_command(**{field: value})
    response = httpx.post(bot.sender.url, content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    bot.slack.wait_for("views.open")


def test_access_text_with_the_word_payload_is_answered(bot: Bot) -> None:
    body = slash_command(text="payload please")
    response = httpx.post(bot.sender.url, content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    view = bot.slack.wait_for("views.open")[0].args["view"]  # read as /access's own words
    assert any("payload please" in b.get("hint", {}).get("text", "") for b in view["blocks"])


def test_a_real_interactivity_payload_still_reaches_its_listener(bot: Bot) -> None:
    request, _ = bot.request_access(justification="payload of INC-1: the word in the text")
    assert request.justification == "payload of INC-1: the word in the text"


def _raw_post(port: int, head: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head.encode() + body)
        conn.shutdown(socket.SHUT_WR) if body else None
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        return answer


def _our_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("app.", "slack_bolt", "waitress"))]


def test_an_oversized_body_is_refused_with_413_unread_and_logged_once(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = int(bot.url.rsplit(":", 1)[1])
    # 50 MB announced, none of it sent: the answer comes without waiting for the body.
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_post(port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert time.monotonic() - started < 3
    # Just over the limit, sent whole: refused too.
    big = b"text=" + b"a" * (bot.runtime.settings.max_body_bytes)
    response = httpx.post(bot.sender.url, content=big, headers=signed_headers(big))
    assert response.status_code == 413
    refusals = [r for r in _our_lines(caplog) if "refused" in r.getMessage()]
    assert len(refusals) == 2, [r.getMessage() for r in _our_lines(caplog)]
    assert all("aaaa" not in r.getMessage() for r in _our_lines(caplog))


def test_an_oversized_chunked_body_is_refused_as_it_grows(bot: Bot) -> None:
    port = int(bot.url.rsplit(":", 1)[1])
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    # 512 KiB and 16 bytes, in chunks: refused once it passes the limit. Nothing more is sent,
    # so the server has read all of it and closes with no unread data (no reset).
    limit = bot.runtime.settings.max_body_bytes
    chunks = [b"a" * 65536] * (limit // 65536) + [b"b" * 16]
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in chunks)
    answer = _raw_post(port, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_a_body_at_the_limit_is_read(bot: Bot) -> None:
    limit = bot.runtime.settings.max_body_bytes
    body = slash_command(text="help")
    body += b"&pad=" + b"a" * (limit - len(body) - 5)
    assert len(body) == limit
    response = httpx.post(bot.sender.url, content=body, headers=signed_headers(body))
    assert response.status_code == 200 and "opens a form" in response.text


def test_an_unsigned_request_is_refused_and_never_logged(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = slash_command(text=FORGED)
    headers = signed_headers(body, secret="not-the-secret")
    response = httpx.post(bot.sender.url, content=body, headers=headers)
    assert response.status_code == 401
    lines = _our_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "UADMIN" not in lines[0].getMessage() and "legacy" not in lines[0].getMessage()
    assert bot.slack.calls_to("views.open") == []


def _format(formatter: logging.Formatter, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("app.test_logs")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning(message, *args)
        try:
            raise ValueError("bad\nINFO fake line")
        except ValueError:
            logger.exception("failed for %s", "x\ry")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_text_log_lines_escape_control_characters() -> None:
    out = _format(SafeTextFormatter(TEXT_FORMAT), "request from %s", FORGED + "\u202e\x1b[2J")
    lines = out.splitlines()
    assert lines[0].endswith(
        "request from x\\n2026-11-27 21:00:00,000 INFO app.core.requests: request 42 approved"
        " by UADMIN\\u202e\\x1b[2J"
    )
    assert "failed for x\\ry" in lines[1]
    # every line of the traceback is marked as such, the exception's newline included
    assert lines[2:] and all(line.startswith("  | ") for line in lines[2:])
    assert "  | INFO fake line" in lines


def test_json_logs_are_one_object_per_line() -> None:
    out = _format(JsonFormatter(), "request from %s", FORGED)
    lines = out.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "request from " + FORGED
    assert first["level"] == "WARNING" and first["logger"] == "app.test_logs"
    assert "ValueError: bad\nINFO fake line" in second["exception"]


def test_log_format_json_configures_the_root_logger() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("info", "text")
        assert isinstance(root.handlers[0].formatter, SafeTextFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time()) - 600)},
    ],
)
def test_missing_malformed_or_stale_signatures_get_401(bot: Bot, headers: dict[str, str]) -> None:
    body = slash_command()
    if "X-Slack-Request-Timestamp" in headers and "X-Slack-Signature" not in headers:
        ts = headers["X-Slack-Request-Timestamp"]  # signed right, ten minutes ago
        digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
        headers = {**headers, "X-Slack-Signature": "v0=" + digest.hexdigest()}
    response = httpx.post(bot.sender.url, content=body, headers=headers)
    assert response.status_code == 401
    assert bot.slack.calls_to("views.open") == []
