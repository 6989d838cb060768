"""Calls under a hard deadline: threads are reused, a hung call never holds up the next, and
idle threads end."""

from __future__ import annotations

import threading
import time

import pytest

from app.core.deadline import CallThreads, DeadlineExceeded, call_with_deadline
from tests.support.wait import wait_until


def test_calls_one_after_another_reuse_one_thread() -> None:
    threads = CallThreads()
    ran_on: set[int] = set()

    def call() -> int:
        ran_on.add(threading.get_ident())
        return 7

    results = [call_with_deadline(call, 1.0, threads=threads) for _ in range(20)]
    assert results == [7] * 20
    assert len(ran_on) == 1
    assert threads.threads == 1


def test_a_hung_call_keeps_its_thread_and_the_next_call_gets_another() -> None:
    threads = CallThreads()
    release = threading.Event()
    ended: list[str] = []
    with pytest.raises(DeadlineExceeded, match=r"did not finish within 0\.05s"):
        call_with_deadline(release.wait, 0.05, threads=threads, done=lambda: ended.append("hung"))
    started = time.monotonic()
    assert call_with_deadline(lambda: "answer", 1.0, threads=threads) == "answer"
    assert time.monotonic() - started < 0.5
    assert threads.threads == 2
    assert ended == []  # the hung call is still running: its target slot stays taken
    release.set()
    wait_until(lambda: ended == ["hung"], what="the hung call's done callback")
    # Both threads are idle now: the next two calls at once start no third.
    _calls_at_once(threads, 2)
    assert threads.threads == 2


def test_idle_threads_end() -> None:
    threads = CallThreads(idle_seconds=0.05)
    _calls_at_once(threads, 3)
    assert threads.threads == 3
    wait_until(lambda: threads.threads == 0, what="the idle threads to end")
    assert call_with_deadline(lambda: "again", 1.0, threads=threads) == "again"


def test_the_done_callback_has_run_when_the_result_is_returned() -> None:
    done: list[bool] = []
    assert call_with_deadline(lambda: 1, 1.0, done=lambda: done.append(True)) == 1
    assert done == [True]


def test_what_the_call_raises_reaches_the_caller() -> None:
    def fail() -> None:
        raise KeyError("no such account")

    with pytest.raises(KeyError, match="no such account"):
        call_with_deadline(fail, 1.0)


def _calls_at_once(threads: CallThreads, count: int) -> None:
    """`count` calls from as many callers, all running at the same moment, then all ended."""
    together = threading.Barrier(count + 1)
    callers = [
        threading.Thread(
            target=call_with_deadline, args=(together.wait, 2.0), kwargs={"threads": threads}
        )
        for _ in range(count)
    ]
    for caller in callers:
        caller.start()
    together.wait(timeout=2)
    for caller in callers:
        caller.join()
