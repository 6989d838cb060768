"""The fakes themselves: they must answer as the real services do, or the suite proves nothing.

FakeSlack rate-limits like Slack (HTTP 429, `Retry-After`) and refuses unknown methods; the
webhook receiver checks signatures as the README documents them, with its own code; the suite's
PostgreSQL leaves no directory behind.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from app.grants.base import GrantContext, GrantUser
from app.grants.webhook import Webhook
from tests.support.fake_slack import BOT_TOKEN, KNOWN_METHODS, FakeSlack
from tests.support.postgres import SuitePostgres
from tests.support.webhook_receiver import WebhookReceiver

APP_DIR = Path(__file__).resolve().parent.parent / "app"
SECRET = "receiver-test-secret"


def header(headers: dict[str, Any], name: str) -> Any:
    """A response header whatever its case; slack_sdk keeps the server's spelling."""
    found = [value for key, value in headers.items() if key.lower() == name.lower()]
    assert found, f"no {name} header in {headers}"
    value = found[0]
    return value[0] if isinstance(value, list) else value


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.add_user("UALICE", "alice@example.com", "Alice")
    fake.start()
    yield fake
    fake.stop()


def client(fake: FakeSlack, *, retry_handlers: list[Any] | None = None) -> WebClient:
    return WebClient(
        base_url=fake.api_url, token=BOT_TOKEN, timeout=5, retry_handlers=retry_handlers or []
    )


# -- FakeSlack: HTTP 429 with Retry-After ----------------------------------------------------


def test_a_rate_limited_call_answers_429_with_retry_after(slack: FakeSlack) -> None:
    slack.rate_limit("chat.postMessage", every=1, retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client(slack).chat_postMessage(channel="C1", text="hello")

    response = raised.value.response
    assert response.status_code == 429
    assert header(response.headers, "Retry-After") == "7"
    assert response["ok"] is False and response["error"] == "ratelimited"
    # Refused calls are kept apart: `calls` and `wait_for` count only what Slack accepted.
    assert [c.method for c in slack.rate_limited] == ["chat.postMessage"]
    assert slack.calls_to("chat.postMessage") == []
    # Other methods are not limited.
    assert client(slack).users_info(user="UALICE")["user"]["id"] == "UALICE"


def test_rate_limit_every_nth_call_of_any_method(slack: FakeSlack) -> None:
    slack.rate_limit(every=3, retry_after=2)
    web = client(slack)
    statuses = []
    for i in range(6):
        try:
            if i % 2:
                web.users_info(user="UALICE")
            else:
                web.chat_postMessage(channel="C1", text=str(i))
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)

    assert statuses == [200, 200, 429, 200, 200, 429]
    assert [c.method for c in slack.rate_limited] == ["chat.postMessage", "users.info"]
    assert len(slack.calls) == 4


def test_rate_limit_next_then_slack_sdk_retries_after_waiting(slack: FakeSlack) -> None:
    slack.rate_limit_next("chat.postMessage", times=1, retry_after=1)
    web = client(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    started = time.monotonic()
    response = web.chat_postMessage(channel="C1", text="hello")

    assert response["ok"] is True
    assert time.monotonic() - started >= 1  # it honoured Retry-After
    assert len(slack.rate_limited) == 1
    assert [c.args["text"] for c in slack.wait_for("chat.postMessage")] == ["hello"]


def test_rate_limit_next_outlasting_the_retries_fails(slack: FakeSlack) -> None:
    slack.rate_limit_next("chat.postMessage", times=2, retry_after=0)
    web = client(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    with pytest.raises(SlackApiError) as raised:
        web.chat_postMessage(channel="C1", text="hello")

    assert raised.value.response.status_code == 429
    assert len(slack.rate_limited) == 2 and slack.calls == []
    assert web.chat_postMessage(channel="C1", text="again")["ok"] is True  # the queue is spent


# -- FakeSlack: unknown methods ---------------------------------------------------------------


def test_an_unknown_method_answers_unknown_method(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(slack).api_call("chat.frobnicate", json={"channel": "C1"})

    response = raised.value.response
    assert response.status_code == 200  # as Slack answers it
    assert response["ok"] is False and response["error"] == "unknown_method"
    assert [c.method for c in slack.unknown] == ["chat.frobnicate"]
    assert slack.calls == []


def test_a_real_slack_method_the_fake_does_not_know_is_refused(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(slack).reactions_add(channel="C1", timestamp="1.2", name="eyes")

    assert raised.value.response["error"] == "unknown_method"
    assert [c.method for c in slack.unknown] == ["reactions.add"]


@pytest.mark.parametrize("method", sorted(KNOWN_METHODS))
def test_every_known_method_is_answered(slack: FakeSlack, method: str) -> None:
    try:
        client(slack).api_call(method, json={"channel": "C1", "user": "UALICE"})
    except SlackApiError as exc:  # e.g. channel_not_found: a real answer, not unknown_method
        assert exc.response["error"] != "unknown_method"
    assert slack.unknown == []


def slack_methods_the_app_calls() -> dict[str, str]:
    """WebClient methods called anywhere in app/ (`client.chat_postMessage(...)`), by API name."""
    called: dict[str, str] = {}
    for source in APP_DIR.rglob("*.py"):
        for name in set(re.findall(r"\.([a-z]+_[A-Za-z_]+)\(", source.read_text())):
            function = getattr(WebClient, name, None)
            if function is None or not callable(function):
                continue
            api = re.search(r'api_call\(\s*"([a-zA-Z.]+)"', inspect.getsource(function))
            if api:
                called[api.group(1)] = f"{source.relative_to(APP_DIR.parent)}: {name}"
    return called


def test_every_slack_method_the_app_calls_is_known_to_the_fake() -> None:
    called = slack_methods_the_app_calls()
    assert "chat.postMessage" in called  # the scan itself works
    unknown = {api: where for api, where in called.items() if api not in KNOWN_METHODS}
    assert unknown == {}, f"the app calls Slack methods FakeSlack refuses: {unknown}"


# -- The webhook receiver checks signatures as the README says -------------------------------


def readme_sign(secret: str, timestamp: str, body: bytes) -> str:
    """README: `X-Accessbot-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`."""
    return "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, "sha256").hexdigest()


def body_only(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, "sha256").hexdigest()


def no_prefix(secret: str, timestamp: str, body: bytes) -> str:
    return readme_sign(secret, timestamp, body).removeprefix("v1=")


def other_version(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + readme_sign(secret, timestamp, body).removeprefix("v1=")


def no_dot(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + body, "sha256").hexdigest()


def sha1(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, "sha1").hexdigest()


def wrong_secret(secret: str, timestamp: str, body: bytes) -> str:
    return readme_sign(secret + "x", timestamp, body)


def plain_sha256(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hashlib.sha256(f"{secret}{timestamp}.".encode() + body).hexdigest()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    server.start()
    yield server
    server.stop()


EVENT = {
    "event": "grant",
    "event_id": "7f1c0a52-1111-4222-8333-944445555666",  # the lead is adding this field
    "request_id": "9a4f2b1e-0000-4000-8000-000000000001",
    "resource": "orders-db",
    "workflow": "production",
    "user": {"slack_id": "U0123", "email": "alice@example.com"},
    "expires_at": "2026-11-25T14:05:00Z",
    "approved_by": "U0AAA",
}


def deliver(
    receiver: WebhookReceiver,
    signer: Callable[[str, str, bytes], str] = readme_sign,
    *,
    timestamp: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = json.dumps(EVENT, separators=(",", ":")).encode()
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    sent = {
        "Content-Type": "application/json",
        "X-Accessbot-Timestamp": timestamp,
        "X-Accessbot-Signature": signer(SECRET, timestamp, body),
    }
    if headers is not None:
        sent = {"Content-Type": "application/json", **headers}
    return httpx.post(receiver.url, content=body, headers=sent, timeout=5)


def test_receiver_accepts_a_delivery_signed_as_the_readme_says(receiver: WebhookReceiver) -> None:
    before = time.time()
    assert deliver(receiver).status_code == 200
    assert receiver.events == [EVENT] and receiver.events[0]["event_id"] == EVENT["event_id"]
    assert receiver.unsigned == 0
    ((arrived, event),) = receiver.received_at
    assert event == EVENT and before <= arrived <= time.time()


def test_receiver_accepts_a_timestamp_just_inside_five_minutes(receiver: WebhookReceiver) -> None:
    assert deliver(receiver, timestamp=str(int(time.time()) - 290)).status_code == 200


@pytest.mark.parametrize(
    "signer",
    [body_only, no_prefix, other_version, no_dot, sha1, wrong_secret, plain_sha256],
)
def test_receiver_refuses_any_other_signature_scheme(
    receiver: WebhookReceiver, signer: Callable[[str, str, bytes], str]
) -> None:
    assert deliver(receiver, signer).status_code == 401
    assert receiver.events == [] and receiver.attempts == [] and receiver.unsigned == 1


# Ten seconds clear of the limit: int(time.time()) drops up to a second, so 301 seconds ahead
# could arrive only 300.x seconds ahead and be (rightly) accepted.
@pytest.mark.parametrize("age", [310, 3600, -310])
def test_receiver_refuses_a_stale_or_future_timestamp(receiver: WebhookReceiver, age: int) -> None:
    assert deliver(receiver, timestamp=str(int(time.time()) - age)).status_code == 401
    assert receiver.events == [] and receiver.unsigned == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Accessbot-Timestamp": "now", "X-Accessbot-Signature": "v1=00"},
        {"X-Accessbot-Signature": readme_sign(SECRET, "", b"")},
    ],
    ids=["no headers", "garbage timestamp", "no timestamp"],
)
def test_receiver_refuses_missing_or_garbled_headers(
    receiver: WebhookReceiver, headers: dict[str, str]
) -> None:
    assert deliver(receiver, headers=headers).status_code == 401
    assert receiver.events == [] and receiver.unsigned == 1


def test_the_apps_webhook_signs_as_the_readme_says(receiver: WebhookReceiver) -> None:
    """The other direction: the receiver follows the README, so the app must too."""
    context = GrantContext(
        event="grant",
        request_id=uuid.uuid4(),
        grant_id=uuid.uuid4(),
        workflow="production",
        resource="orders-db",
        resource_name="Orders DB",
        user=GrantUser(slack_id="U0123", email="alice@example.com"),
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        approved_by="U0AAA",
    )
    Webhook(url=receiver.url, secret=SECRET, timeout=5).grant(context)
    assert [e["resource"] for e in receiver.events] == ["orders-db"] and receiver.unsigned == 0


def test_receiver_does_not_borrow_the_apps_signing_code() -> None:
    source = (Path(__file__).parent / "support" / "webhook_receiver.py").read_text()
    assert "app.grants" not in source and "from app" not in source


# -- SuitePostgres leaves no directory behind --------------------------------------------------


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="no embedded server to clean up"
)
def test_suite_postgres_stop_removes_its_directory() -> None:
    """Starts a second, throwaway embedded PostgreSQL (a few seconds) and stops it."""
    server = SuitePostgres()
    root = server.root
    assert root is not None and root.is_dir()
    server.stop()
    assert not root.exists()
