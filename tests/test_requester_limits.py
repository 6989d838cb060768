"""One person cannot flood the approvers: a cap on open requests, a rate, no replays."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from app.core.models import RequestState
from app.slack.ids import Ids
from tests.support.bot import APPROVER, APPROVERS_CHANNEL, OUTSIDER, REQUESTER, Bot
from tests.support.wait import wait_until


def submit(bot: Bot, user: str = REQUESTER, **kwargs: str) -> httpx.Response:
    return bot.sender.submit_request(
        user,
        resource="orders-db",
        justification="INC-7: looking",
        duration_seconds=900,
        **kwargs,
    )


def refusals(bot: Bot, user: str = REQUESTER) -> list[str]:
    """The "refused" DMs `user` got."""
    return [
        c.text()
        for c in bot.slack.calls_to("chat.postMessage", channel=user)
        if "refused" in c.text()
    ]


def modal_opened_for(bot: Bot, user: str = REQUESTER) -> str:
    """Type `/access`; the modal Slack was asked to open, as JSON text."""
    before = len(bot.slack.calls_to("views.open"))
    assert bot.sender.command(user).status_code == 200
    calls = wait_until(lambda: bot.slack.calls_to("views.open")[before:] or None, what="the modal")
    return json.dumps(calls[-1].args)


def test_the_sixth_open_request_is_refused_in_the_modal(bot: Bot) -> None:
    assert bot.runtime.settings.max_open_requests == 5  # the default
    for _ in range(5):
        bot.request_access()
    posts = len(bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL))

    # /access shows the cap in the modal, on the resource field, as it opens
    assert "5 requests waiting for a decision" in modal_opened_for(bot)
    assert "waiting for a decision" not in modal_opened_for(bot, OUTSIDER)

    # submitted all the same (a modal opened earlier): acked at once, refused by DM, no request
    response = submit(bot)
    assert response.status_code == 200 and response.content == b""
    refused = wait_until(lambda: refusals(bot), what="the refusal")
    assert "5 requests waiting for a decision" in refused[0]
    assert len(bot.requests()) == 5
    assert len(bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)) == posts
    # another person is not held back by it
    assert submit(bot, OUTSIDER).content == b""
    wait_until(lambda: len(bot.requests()) == 6, what="the other person's request")


def test_a_one_line_request_past_the_cap_is_refused_in_the_ack(
    bot_with: Callable[..., Bot],
) -> None:
    """`/access orders-db 15m why` (issue 11) is held to the same caps as the modal."""
    bot = bot_with(settings={"max_open_requests": 1})
    bot.request_access()

    response = bot.sender.command(REQUESTER, "orders-db 15m fixing INC-9")

    assert response.status_code == 200
    assert "1 requests waiting for a decision" in response.text, response.text
    assert "Asking for" not in response.text
    time.sleep(0.5)  # nothing runs after the ack
    assert len(bot.requests()) == 1
    dms = bot.slack.calls_to("chat.postMessage", channel=REQUESTER)
    assert not [c for c in dms if "refused" in c.text()]


def test_a_decided_request_frees_its_place(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(settings={"max_open_requests": 2})
    first, _ = bot.request_access()
    bot.request_access()
    assert "2 requests waiting for a decision" in modal_opened_for(bot)

    bot.click(APPROVER, Ids.DENY, first)
    wait_until(
        lambda: bot.requests()[0].state == RequestState.DENIED, what="the first to be denied"
    )

    assert submit(bot).content == b""
    wait_until(lambda: len(bot.requests()) == 3, what="the third request")


def test_the_hourly_rate_counts_decided_requests_too(bot_with: Callable[..., Bot]) -> None:
    bot = bot_with(settings={"max_requests_per_hour": 2})
    for _ in range(2):
        request, _ = bot.request_access()
        bot.click(APPROVER, Ids.DENY, request)
    wait_until(lambda: all(r.state == RequestState.DENIED for r in bot.requests()), what="denials")

    assert "2 requests in the last hour" in modal_opened_for(bot)
    submit(bot)
    assert "2 requests in the last hour" in wait_until(lambda: refusals(bot), what="refusal")[0]
    assert len(bot.requests()) == 2


def test_parallel_submissions_cannot_pass_the_cap_together(
    bot_with: Callable[..., Bot],
) -> None:
    bot = bot_with(settings={"max_open_requests": 2})
    barrier = threading.Barrier(6)
    answers: list[httpx.Response] = []

    def one() -> None:
        barrier.wait()
        answers.append(submit(bot))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(a.status_code == 200 for a in answers)
    refused = wait_until(
        lambda: (
            [
                c
                for c in bot.slack.calls_to("chat.postMessage", channel=REQUESTER)
                if "refused" in c.text()
            ]
            if len(bot.requests()) == 2
            else None
        ),
        what="the requests past the cap to be refused",
    )
    ack_refused = [a for a in answers if a.content and "errors" in a.json()]
    wait_until(
        lambda: (
            len(
                [
                    c
                    for c in bot.slack.calls_to("chat.postMessage", channel=REQUESTER)
                    if "refused" in c.text()
                ]
            )
            + len(ack_refused)
            == 4
        ),
        what="every submission past the cap refused, in the modal or by DM",
    )
    assert refused is not None
    assert len(bot.requests()) == 2


def test_a_replayed_submission_files_no_second_request(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    first = submit(bot, view_id="VREPLAYED1")
    assert first.content == b""
    wait_until(lambda: bot.requests() and bot.requests()[0].approvers_message_ts, what="post")

    replayed = [submit(bot, view_id="VREPLAYED1") for _ in range(3)]

    assert all(r.status_code == 200 for r in replayed)
    wait_until(
        lambda: len([r for r in caplog.records if "replayed submission" in r.getMessage()]) == 3,
        what="the three replays to be handled",
    )
    assert len(bot.requests()) == 1
    assert bot.audit_events().count("requested") == 1
    posts = bot.slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)
    assert len(posts) == 1, [json.dumps(p.args)[:100] for p in posts]
    # a new modal (a new view id) is a new request
    assert submit(bot, view_id="VOTHER").content == b""


def test_a_replayed_extension_submission_files_no_second_extension(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    request, _ = bot.request_access()
    bot.click(APPROVER, Ids.APPROVE, request)
    grant = wait_until(
        lambda: (g := bot.grant_of(request)) and g.state == "active" and g, what="the grant"
    )

    for _ in range(3):
        response = bot.sender.submit_extension(
            REQUESTER,
            str(grant.id),
            duration_seconds=900,
            justification="migration runs long",
            view_id="VEXTREPLAY",
        )
        assert response.status_code == 200

    wait_until(
        lambda: len([r for r in caplog.records if "replayed submission" in r.getMessage()]) == 2,
        what="the two replays to be handled",
    )
    assert [r.kind for r in bot.requests()] == ["access", "extension"]
