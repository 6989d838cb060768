"""The durable Slack outbox end to end: what people see when Slack slows down or fails.

Signed Slack requests go to the real bot; the outbox sender delivers to a fake Slack that
timestamps every call, so the tests can tell what arrived, how often, in which order and when.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from app.core.models import AccessRequest, GrantState, OutboxMessage
from app.core.outbox import Outbox, OutboxQueue
from app.core.ports import utcnow
from app.slack.ids import Ids
from app.slack.notifier import POST, REFRESH
from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    APPROVERS_CHANNEL,
    OUTSIDER,
    REQUESTER,
    Bot,
)
from tests.support.fake_slack import Call, FakeSlack
from tests.support.http_fake import Answer, parse_body
from tests.support.wait import wait_until

SUBMITTED = "sent to the approvers"  # dm_submitted
GRANTED = "is granted until"  # dm_granted
ENDED = "has ended: it expired and was revoked"  # dm_ended, end_reason "expired"
EXPIRED_AND_REVOKED = "Access expired and was revoked"  # the approvers' message, at the end
SLOW = 60.0  # generous timeouts: Slack answering 429 slows everything down on purpose


# -- a fake Slack that timestamps calls and can hold one back -------------------------------


@dataclass
class Arrival:
    at: float  # time.monotonic() when Slack took the call
    call: Call
    status: int  # 200, or 429 when Slack refused it

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


@dataclass
class Hold:
    """Keeps the first call that matches waiting, unanswered, until `release()`."""

    method: str
    where: Callable[[Call], bool]
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_arrived(self, timeout: float = SLOW) -> None:
        assert self.arrived.wait(timeout), f"no {self.method} call to hold arrived"

    def release(self) -> None:
        self.released.set()


class TimedSlack(FakeSlack):
    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []
        self._holds: list[Hold] = []
        self._timing_lock = threading.Lock()

    def hold(self, method: str, where: Callable[[Call], bool] = lambda call: True) -> Hold:
        hold = Hold(method, where)
        with self._timing_lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        with self._timing_lock:
            for hold in self._holds:
                hold.release()

    def arrivals_of(self, method: str, **match: Any) -> list[Arrival]:
        with self._timing_lock:
            arrivals = sorted(self.arrivals, key=lambda a: a.at)
        return [
            a
            for a in arrivals
            if a.call.method == method and all(a.call.args.get(k) == v for k, v in match.items())
        ]

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        call = Call(urlsplit(path).path.removeprefix("/api/"), parse_body(path, headers, body))
        with self._timing_lock:
            hold = next(
                (
                    h
                    for h in self._holds
                    if not h.arrived.is_set() and h.method == call.method and h.where(call)
                ),
                None,
            )
            if hold is not None:
                hold.arrived.set()
        if hold is not None:
            hold.released.wait(SLOW)
        at = time.monotonic()
        answer = super().handle(method, path, headers, body)
        with self._timing_lock:
            self.arrivals.append(Arrival(at, call, answer[0]))
        return answer


@pytest.fixture
def fake_slack() -> Iterator[TimedSlack]:
    """The suite's fake Slack (the same people), timestamping calls: `bot` and `bot_factory`
    use it."""
    slack = TimedSlack()
    slack.add_user(REQUESTER, "alice@example.com", "Alice Requester")
    slack.add_user(APPROVER, "bob@example.com", "Bob Approver")
    slack.add_user(APPROVER_2, "carol@example.com", "Carol Approver")
    slack.add_user(OUTSIDER, "mallory@example.com", "Mallory Outsider")
    slack.start()
    yield slack
    slack.release_all()
    slack.stop()


# -- helpers ----------------------------------------------------------------------------------


def add_requesters(slack: FakeSlack, count: int) -> list[str]:
    users = [f"UUSER{n:02d}" for n in range(1, count + 1)]
    for n, user in enumerate(users, start=1):
        slack.add_user(user, f"user{n}@example.com", f"User {n}")
    return users


def submit(bot: Bot, user: str, duration: timedelta = timedelta(seconds=1)) -> None:
    response = bot.sender.submit_request(
        user,
        resource="orders-db",
        justification=f"INC-42: {user} checks the orders",
        duration_seconds=int(duration.total_seconds()),
    )
    assert response.status_code == 200 and response.content == b"", response.text


def request_of(bot: Bot, user: str) -> AccessRequest | None:
    return next((r for r in bot.requests() if r.requester_slack_id == user), None)


def posted_request_of(bot: Bot, user: str, timeout: float = SLOW) -> AccessRequest:
    """The user's request once its approvers' message is posted."""
    return wait_until(
        lambda: (r := request_of(bot, user)) and r.approvers_message_ts and r,
        timeout=timeout,
        what=f"{user}'s request to be stored and posted to the approvers",
    )


def outbox(bot: Bot, **match: Any) -> list[OutboxMessage]:
    with bot.sessions() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in match.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        return list(session.scalars(query))


def pending_outbox(bot: Bot, **match: Any) -> list[OutboxMessage]:
    return [m for m in outbox(bot, **match) if m.done_at is None]


def drained(bot: Bot, timeout: float = SLOW) -> None:
    wait_until(
        lambda: bot.runtime.outbox.pending() == 0, timeout=timeout, what="the outbox to drain"
    )


def dm_row(bot: Bot, user: str, text: str) -> OutboxMessage | None:
    return next(
        (
            m
            for m in outbox(bot, conversation=user, kind=POST)
            if text in str(m.payload.get("text"))
        ),
        None,
    )


def texts_to(slack: FakeSlack, channel: str) -> list[str]:
    return [c.text() for c in slack.calls_to("chat.postMessage", channel=channel)]


def positions(texts: list[str], needle: str) -> list[int]:
    return [i for i, text in enumerate(texts) if needle in text]


# -- 1. 429s during whole flows ---------------------------------------------------------------


def test_every_message_is_delivered_exactly_once_while_slack_answers_429(
    bot_factory: Callable[..., Bot], fake_slack: TimedSlack
) -> None:
    users = add_requesters(fake_slack, 4)
    bot = bot_factory()
    fake_slack.rate_limit(every=3, retry_after=1)  # every third call, whatever the method

    for user in users:
        submit(bot, user, timedelta(seconds=1))
    requests = [posted_request_of(bot, user) for user in users]
    for request in requests:
        bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(
        lambda: len(bot.grants()) == len(users)
        and all(g.state == GrantState.REVOKED for g in bot.grants()),
        timeout=SLOW,
        what="every grant to be given, to expire and to be revoked",
    )
    drained(bot)

    assert fake_slack.rate_limited, "Slack never answered 429: the test tested nothing"
    # Every message went out exactly once: none lost to a 429, none sent twice.
    posts = Counter(
        (c.args["channel"], c.args.get("text")) for c in fake_slack.calls_to("chat.postMessage")
    )
    assert [key for key, n in posts.items() if n > 1] == []
    for user in users:
        dms = texts_to(fake_slack, user)
        assert [len(positions(dms, what)) for what in (SUBMITTED, GRANTED, ENDED)] == [1, 1, 1]
        assert len(dms) == 3, dms
    approvers_posts = fake_slack.calls_to("chat.postMessage", channel=APPROVERS_CHANNEL)
    assert sorted(r.approvers_message_ts for r in requests) == sorted(
        {r.approvers_message_ts for r in requests}
    )
    assert len(approvers_posts) == len(users)
    for request in requests:
        assert len([p for p in approvers_posts if str(request.id) in p.text()]) == 1
        # ...and each approvers' message ends showing what finally happened.
        updates = fake_slack.calls_to("chat.update", ts=request.approvers_message_ts)
        assert updates, f"the approvers' message of {request.requester_slack_id} never changed"
        if EXPIRED_AND_REVOKED not in updates[-1].text():
            for m in outbox(bot, request_id=request.id):
                print("ROW", m.id, m.kind, m.collapse_key, m.created_at, m.done_at, m.outcome, m.attempts, m.last_error)
            for e in bot.audit(request.id):
                print("AUDIT", e.event, e.at if hasattr(e, "at") else getattr(e, "created_at", None))
            for a in fake_slack.arrivals_of("chat.update", ts=request.approvers_message_ts):
                print("UPD", a.at, a.status, a.call.text()[:160])
        assert EXPIRED_AND_REVOKED in updates[-1].text()
        assert updates[-1].buttons() == []

    # After a 429 the sender called that method again only once Retry-After had passed (calls
    # already on their way when the 429 came back are not its choice: a short allowance).
    in_flight = 0.25
    for method in ("chat.postMessage", "chat.update"):
        arrivals = fake_slack.arrivals_of(method)
        for refused in (a for a in arrivals if a.rate_limited):
            too_soon = [
                round(a.at - refused.at, 3)
                for a in arrivals
                if refused.at + in_flight < a.at < refused.at + 1.0
            ]
            assert too_soon == [], f"{method} called {too_soon}s after a 429 with Retry-After 1"
        # The message refused is tried again no sooner than Retry-After.
        for n, refused in enumerate(arrivals):
            if refused.rate_limited:
                again = next(
                    a
                    for a in arrivals[n + 1 :]
                    if a.call.args.get("channel") == refused.call.args.get("channel")
                    and a.call.args.get("ts") == refused.call.args.get("ts")
                    and (method == "chat.update" or a.call.text() == refused.call.text())
                )
                assert again.at - refused.at >= 1.0
