"""Slack's ack never waits for work: listeners ack on Bolt's threads and hand the rest over."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event, text

from app.core.models import AccessRequest
from app.db.session import make_engine
from app.slack.after_ack import AckTraffic, AfterAck
from tests.support.bot import REQUESTER, Bot
from tests.support.slack_requests import SlackSender
from tests.support.wait import wait_until

SUBMISSIONS = 10
SLOW = 2.0  # seconds Slack takes to answer users.info, which storing a request needs
ACK_WITHIN = 1.0  # seconds each ack may take: well under SLOW, far over a real ack


def timed_submission(url: str) -> tuple[int, bytes, float]:
    sender = SlackSender(url)
    try:
        started = time.monotonic()
        response = sender.submit_request(
            REQUESTER,
            resource="orders-db",
            justification="INC-1234: checking stuck orders",
            duration_seconds=900,
        )
        return response.status_code, response.content, time.monotonic() - started
    finally:
        sender.http.close()


def test_concurrent_submissions_are_acked_before_the_slow_work(
    bot_with: Callable[..., Bot],
) -> None:
    # Two listener threads for ten submissions: if a listener kept its thread for the work after
    # its ack (users.info, the database, the approvers' post), the later acks would queue behind
    # that work for SLOW seconds and more.
    bot = bot_with(settings={"worker_threads": 2, "max_open_requests": SUBMISSIONS})
    bot.slack.delays["users.info"] = SLOW

    with ThreadPoolExecutor(max_workers=SUBMISSIONS) as pool:
        results = list(pool.map(timed_submission, [bot.url] * SUBMISSIONS))

    assert [(status, body) for status, body, _ in results] == [(200, b"")] * SUBMISSIONS
    slowest = max(seconds for _, _, seconds in results)
    assert slowest < ACK_WITHIN, sorted(round(seconds, 3) for _, _, seconds in results)
    assert len(bot.requests()) < SUBMISSIONS  # the work was still going on at the last ack

    def all_posted() -> list[AccessRequest] | None:
        posted = [r for r in bot.requests() if r.approvers_message_ts]
        return posted if len(posted) == SUBMISSIONS else None

    stored = wait_until(all_posted, what="every request to be stored and posted", timeout=15)
    assert {r.requester_slack_id for r in stored} == {REQUESTER}
    bot.slack.wait_for("chat.postMessage", channel=stored[0].approvers_channel, count=SUBMISSIONS)


def test_stop_shuts_the_listener_and_after_ack_executors_down(bot: Bot) -> None:
    finished = threading.Event()

    def in_flight() -> None:
        time.sleep(0.3)
        finished.set()

    bot.runtime.after_ack.submit(in_flight)
    bot.stop()

    assert finished.is_set()  # stop waited for the work in hand
    with pytest.raises(RuntimeError):
        bot.runtime.listener_executor.submit(print)
    with pytest.raises(RuntimeError):
        bot.runtime.after_ack.submit(print)


def test_a_failing_job_is_logged_without_its_arguments_and_harms_no_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    after_ack = AfterAck(threads=1)
    done: list[str] = []

    def explode(payload: dict[str, str]) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="app.slack.after_ack"):
        after_ack.submit(explode, {"token": "xoxb-secret"}).result(timeout=5)
        after_ack.submit(done.append, "next").result(timeout=5)
    after_ack.shutdown(wait=True, timeout=5)

    assert done == ["next"]
    assert "explode" in caplog.text and "ValueError: boom" in caplog.text
    assert "xoxb-secret" not in caplog.text


def test_shutdown_waits_a_bounded_time() -> None:
    after_ack = AfterAck(threads=1)
    release = threading.Event()
    after_ack.submit(release.wait, 30)

    started = time.monotonic()
    after_ack.shutdown(wait=True, timeout=0.2)

    assert time.monotonic() - started < 2
    release.set()


def test_background_work_yields_to_requests_being_answered() -> None:
    """While Slack requests are being answered, each background lane runs one job at a time
    (acks come first); once they are answered, the rest run side by side."""
    traffic = AckTraffic()
    after_ack = AfterAck(4, traffic)
    running: list[int] = []
    most = [0]
    lock = threading.Lock()
    release = threading.Event()

    def job() -> None:
        with lock:
            running.append(1)
            most[0] = max(most[0], len(running))
        release.wait(5)
        with lock:
            running.pop()

    try:
        with traffic.answering():
            futures = [after_ack.submit(job) for _ in range(4)]
            wait_until(lambda: len(running) == 1, timeout=2)
            time.sleep(0.2)  # the others had time to start, and must not have
            assert len(running) == 1
            # Another lane is not held back by this one's job.
            with traffic.background("slack-sender"):
                pass
        wait_until(lambda: len(running) == 4, timeout=2)  # answered: all run at once
        release.set()
        for future in futures:
            future.result(timeout=5)
        assert most[0] == 4
    finally:
        release.set()
        after_ack.shutdown(wait=True, timeout=5)


def test_background_transactions_wait_while_requests_are_answered(database_url: str) -> None:
    """Every thread but those answering Slack pauses before each database transaction it
    starts while a request is being answered (at most `yield_limit`); threads answering do not.
    Wired as the bot wires it: the engine's `begin` event."""
    traffic = AckTraffic(yield_limit=1.0)
    engine = make_engine(database_url)
    event.listen(engine, "begin", lambda _connection: traffic.yield_to_answers())
    began: dict[str, float] = {}

    def transaction(name: str) -> None:
        with engine.begin() as connection:
            began[name] = time.monotonic()
            connection.execute(text("SELECT 1"))

    try:
        transaction("warm")  # the pool's first connection, outside the measurement
        with traffic.answering():
            answered_at = time.monotonic()
            background = threading.Thread(target=transaction, args=("background",))
            background.start()
            transaction("answering")  # this thread answers: never held
            time.sleep(0.3)
            assert "background" not in began, "background work ran while a request was answered"
            finished = time.monotonic()
        background.join(5)
        assert began["answering"] - answered_at < 0.3
        assert began["background"] >= finished  # it began once the request was answered
        # Never starves: a request that takes longer than the limit lets it through.
        slow = AckTraffic(yield_limit=0.2)
        with slow.answering():
            started = time.monotonic()
            waiter = threading.Thread(target=slow.yield_to_answers)
            waiter.start()
            waiter.join(5)
            assert 0.15 <= time.monotonic() - started < 1.0
    finally:
        engine.dispose()


def test_jobs_with_a_slack_deadline_do_not_wait_for_a_pause() -> None:
    """Opening a modal must happen within 3 seconds of the trigger: such jobs (`urgent`) run at
    once, even while requests keep coming and ordinary jobs wait for a pause."""
    traffic = AckTraffic(defer_limit=5.0)
    after_ack = AfterAck(2, traffic)
    ran: list[str] = []
    try:
        with traffic.answering():
            waiting = after_ack.submit(ran.append, "ordinary")
            # Taking up every ordinary thread does not hold urgent work up either.
            more = [after_ack.submit(ran.append, "ordinary") for _ in range(3)]
            urgent = after_ack.submit(ran.append, "urgent", urgent=True)
            urgent.result(timeout=1)
            time.sleep(0.2)
            assert ran == ["urgent"], "ordinary jobs wait while requests are being answered"
        waiting.result(timeout=2)  # answered: the rest run
        for future in more:
            future.result(timeout=2)
        assert sorted(ran) == ["ordinary"] * 4 + ["urgent"]
    finally:
        after_ack.shutdown(wait=True, timeout=5)


def test_while_other_work_comes_first_a_lane_trickles_one_job_at_a_time_spaced_out() -> None:
    """While `behind()` (grant workers have a revocation backlog), Slack deliveries start one at
    a time and `behind_spacing` apart; once it clears, they run side by side again."""
    traffic = AckTraffic(behind_spacing=0.2)
    backlog = threading.Event()
    backlog.set()
    starts: list[float] = []
    running: list[int] = []
    most = [0]
    lock = threading.Lock()

    def deliver(work: Callable[[], object]) -> None:
        with traffic.background("slack-sender", behind=backlog.is_set):
            with lock:
                starts.append(time.monotonic())
                running.append(1)
                most[0] = max(most[0], len(running))
            try:
                work()
            finally:
                with lock:
                    running.pop()

    def deliver_all(count: int, work: Callable[[], object]) -> None:
        threads = [threading.Thread(target=deliver, args=(work,)) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    deliver_all(4, lambda: time.sleep(0.01))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert most[0] == 1
    assert len(gaps) == 3 and min(gaps) >= 0.19, gaps
    backlog.clear()
    all_at_once = threading.Barrier(4)
    deliver_all(4, lambda: all_at_once.wait(timeout=5))  # broken unless all four run at once
    assert not all_at_once.broken
    assert most[0] == 4


class CountingCondition(threading.Condition):
    """Counts how often a waiting thread wakes up (for whatever reason)."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.wakeups = 0

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.wakeups += 1
        return woken


def test_an_answer_wakes_one_waiting_thread_not_all_of_them() -> None:
    """Background threads waiting for a pause in requests are not all woken each time a
    request is answered (each of them would take the interpreter lock from the acks): one
    watches for the quiet time to run out, then wakes the others."""
    waiters, answers = 8, 60
    traffic = AckTraffic(defer_limit=30.0, quiet=0.2)
    changed = CountingCondition(traffic._lock)
    pause = CountingCondition(traffic._lock)
    traffic._changed, traffic._pause = changed, pause
    started = threading.Barrier(waiters + 1)
    together = threading.Barrier(waiters)  # broken unless every job runs at the pause
    ran: list[float] = []

    def job() -> None:
        started.wait(5)
        with traffic.background("after-ack"):
            ran.append(time.monotonic())
            together.wait(2)

    with traffic.answering():
        threads = [threading.Thread(target=job) for _ in range(waiters)]
        for thread in threads:
            thread.start()
        started.wait(5)
        time.sleep(0.2)  # all of them waiting for a pause
    for _ in range(answers):  # a run of requests, never `quiet` apart
        with traffic.answering():
            time.sleep(0.001)
    assert not ran, "jobs ran between requests that came less than `quiet` apart"
    last_answer = time.monotonic()
    for thread in threads:
        thread.join(5)

    assert len(ran) == waiters
    assert last_answer + 0.15 <= min(ran) and max(ran) < last_answer + 1.0  # at the pause
    assert not together.broken, "the watcher did not wake the others at the pause"
    # One wake-up per answer for the watcher, and one each at the pause; waking every waiter
    # at every answer would be waiters * answers (480).
    wakeups = changed.wakeups + pause.wakeups
    assert wakeups <= 2 * answers + 2 * waiters, wakeups


def test_the_wake_up_at_a_pause_reaches_a_job_waiting_for_it() -> None:
    """The one wake-up the last answer gives must go to a thread that watches for the pause,
    not to a Slack delivery trickling behind a revocation backlog (which polls on its own)."""
    traffic = AckTraffic(defer_limit=5.0, quiet=0.05)
    hold = threading.Event()
    started: dict[str, float] = {}

    def delivery_in_progress() -> None:  # holds the slack-sender lane
        with traffic.background("slack-sender"):
            hold.wait(5)

    def delivery_behind() -> None:
        with traffic.background("slack-sender", behind=lambda: True):
            started["delivery"] = time.monotonic()

    def job() -> None:
        with traffic.background("after-ack"):
            started["job"] = time.monotonic()

    holder = threading.Thread(target=delivery_in_progress)
    holder.start()
    time.sleep(0.05)
    with traffic.answering():
        behind = threading.Thread(target=delivery_behind)
        behind.start()
        time.sleep(0.005)  # it waits first (polling every 0.05 s), so it would be the one woken
        waiter = threading.Thread(target=job)
        waiter.start()
        time.sleep(0.02)
    answered = time.monotonic()
    waiter.join(5)
    hold.set()
    holder.join(5)
    behind.join(5)

    assert 0.04 <= started["job"] - answered < 0.2, started["job"] - answered


def test_a_watcher_that_leaves_for_its_own_deadline_hands_the_watch_on() -> None:
    """A background transaction (`yield_to_answers`) may be the thread woken to watch for the
    pause, and leave before it comes (its `yield_limit` is shorter): another waiter must take
    the watch over, not sleep until it looks again on its own."""
    traffic = AckTraffic(quiet=0.05, yield_limit=0.02, defer_limit=5.0)
    started: dict[str, float] = {}

    def transaction() -> None:
        traffic.yield_to_answers()

    def job() -> None:
        with traffic.background("after-ack"):
            started["job"] = time.monotonic()

    with traffic.answering():
        stepping = threading.Thread(target=transaction)
        stepping.start()  # the longest waiter: the one the answer wakes
        time.sleep(0.005)
        waiter = threading.Thread(target=job)
        waiter.start()
        time.sleep(0.005)
    answered = time.monotonic()
    stepping.join(5)
    waiter.join(5)

    # Handed on: the job starts at the pause, 0.05 s after the answer; left alone it would
    # start only when it looked again (RECHECK, 0.25 s).
    assert 0.04 <= started["job"] - answered < 0.2, started["job"] - answered
