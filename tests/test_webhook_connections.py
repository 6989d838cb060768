"""The Webhook strategy's connections, shared by the grant workers' threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.grants.base import GrantError
from app.grants.webhook import Webhook
from tests.support.grant_context import revoke_context
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "connections-secret"
THREADS = 40  # more calls at once than httpx keeps idle by default (20)
ROUNDS = 5


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    server.latency = 0.05
    server.start()
    yield server
    server.stop()


def test_calls_from_many_threads_reuse_their_connections_and_none_fails(
    receiver: WebhookReceiver,
) -> None:
    """Connections stay open for the next calls: none is closed as "surplus" while another
    thread's request is about to use it (that request was sent, then read its answer from a
    closed socket after the target had acted on it, and was retried as failed)."""
    hook = Webhook(receiver.url, SECRET)
    start = threading.Barrier(THREADS)
    # Each thread's client (and its connection) goes when the thread ends: count the ended
    # connections while every thread is still alive, past its last call.
    finished = threading.Barrier(THREADS + 1)
    may_exit = threading.Event()
    errors: list[GrantError] = []
    sent: list[str] = []

    def calls(n: int) -> None:
        start.wait()
        for r in range(ROUNDS):
            ctx = revoke_context(n * ROUNDS + r)
            sent.append(ctx.event_id)
            try:
                hook.revoke(ctx)
            except GrantError as exc:
                errors.append(exc)
        finished.wait(60)
        may_exit.wait(60)

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    finished.wait(60)
    ended_during_calls = receiver.httpd.connections_ended
    may_exit.set()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(e["event_id"] for e in receiver.events) == sorted(sent)
    assert len(sent) == THREADS * ROUNDS
    # Every connection the client opened is still open for the next calls: the target saw
    # none of them closed while the calls went on.
    assert receiver.httpd.connections_opened >= THREADS // 2
    assert ended_during_calls == 0
