"""No secret in a target's URL or answer reaches Slack or the logs; the answer is audited alone."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from app.core.models import GrantState
from app.core.text import clean
from app.grants.webhook import Webhook
from app.logs import TEXT_FORMAT, JsonFormatter, SafeTextFormatter
from app.slack.ids import Ids
from app.workflows.model import Resource
from tests.support.bot import APPROVER, FAST_RETRY, REQUESTER, WEBHOOK_SECRET, Bot
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

ANSWER = b"SEKRET-ANSWER db password is hunter2\n<!channel> \x1b[31m" + b"x" * 500


def test_a_failing_webhook_shows_no_credentials_no_query_and_no_answer(
    bot_with: Callable[..., Bot], webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = webhook.url.replace("http://", "http://svc:pa55word@") + "?token=QUERYTOKEN"
    bot = bot_with(
        resources=[
            Resource(
                id="orders-db",
                name="Orders DB",
                grant=Webhook(url=url, secret=WEBHOOK_SECRET, timeout=1.0, retry=FAST_RETRY),
            )
        ]
    )
    webhook.failure_body = ANSWER
    webhook.fail_next(3, status=500)
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, request)

    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == GrantState.FAILED and g,
        what="the grant to fail",
    )
    dm = bot.slack.wait_for(
        "chat.postMessage", channel=REQUESTER, where=lambda c: "granting it failed" in c.text()
    )[0]
    bot.slack.wait_for("chat.postMessage", where=lambda c: "failed after 3 attempts" in c.text())
    assert "http://***@127.0.0.1" in dm.text() and "?***" in dm.text()
    assert grant.last_error and "answered 500" in grant.last_error
    shown = [c.text() for c in bot.slack.calls] + [grant.last_error]
    shown += [
        str({k: v for k, v in e.detail.items() if k != "target_answer"})
        for e in bot.audit(request.id)
    ]
    for formatter in (SafeTextFormatter(TEXT_FORMAT), JsonFormatter()):
        shown += [formatter.format(r) for r in caplog.records]
    for secret in ("pa55word", "QUERYTOKEN", "SEKRET", "hunter2"):
        assert not [text for text in shown if secret in text], secret
    answers = [e.detail for e in bot.audit(request.id) if "target_answer" in e.detail]
    assert [e["error"] for e in answers] == [grant.last_error] * 3
    answer = answers[0]["target_answer"]
    assert answer.startswith("SEKRET-ANSWER db password is hunter2\n<!channel> ?[31m")
    assert len(answer) <= 200


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:8080/x", True),
        ("http://127.8.9.1/x", True),
        ("http://[::1]:9000/x", True),
        ("http://localhost/x", True),
        ("http://hooks.example.com/x", False),
        ("http://10.0.0.5/x", False),
        ("http://127.0.0.1.example.com/x", False),
        ("ftp://127.0.0.1/x", False),
    ],
)
def test_webhook_refuses_http_except_to_loopback(url: str, ok: bool) -> None:
    problems = Webhook(url=url, secret="s").problems()
    assert (problems == []) == ok, problems


def test_webhook_problems_and_description_redact_the_url() -> None:
    hook = Webhook(url="http://svc:pass@hooks.example.com/hook?token=abc", secret="s")
    assert "pass" not in " ".join(hook.problems()) and "abc" not in " ".join(hook.problems())
    secure = Webhook(url="https://svc:pass@hooks.example.com/hook?token=abc#frag", secret="s")
    assert secure.describe() == "webhook POST https://***@hooks.example.com/hook?***"


def test_text_from_outside_loses_the_secrets_of_every_url_in_it() -> None:
    # what a python strategy or a hook may raise: clean() is what stores and shows it
    raised = "POST https://svc:pass@a.example/x?token=t1 failed; see http://b.example/y?k=t2#f"
    assert clean(raised) == ("POST https://***@a.example/x?*** failed; see http://b.example/y?***")
    # a request line as urllib3 logs it at DEBUG: the target's query goes too
    logged = 'http://a.example:80 "POST /hook?token=t3 HTTP/1.1" 500 12'
    assert clean(logged) == 'http://a.example:80 "POST /hook?*** HTTP/1.1" 500 12'
