"""Group commit: outcomes that arrive together share one batch; one bad item harms no other."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from app.core.group_commit import GroupCommit


def test_items_that_arrive_together_share_a_batch_and_each_gets_its_own_result() -> None:
    batches: list[list[int]] = []
    first_batch_started = threading.Event()
    go_on = threading.Event()

    def run_batch(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return [item * 10 for item in items]

    def run_one(item: int) -> int:
        batches.append([item])
        if item == 0:  # the first caller leads; hold it so the others queue up meanwhile
            first_batch_started.set()
            go_on.wait(5)
        return item * 10

    commit: GroupCommit[int, int] = GroupCommit(run_batch=run_batch, run_one=run_one)
    with ThreadPoolExecutor(max_workers=20) as pool:
        first = pool.submit(commit.submit, 0)
        assert first_batch_started.wait(5)
        rest = [pool.submit(commit.submit, n) for n in range(1, 20)]
        while len(commit._queue) < 19:  # all queued behind the first batch
            threading.Event().wait(0.01)
        go_on.set()
        results = [first.result(5)] + [f.result(5) for f in rest]
    assert results == [n * 10 for n in range(20)]
    assert batches[0] == [0]
    assert sorted(batches[1]) == list(range(1, 20))  # one batch for all that waited
    assert len(batches) == 2


class HeldLeader:
    """A first item (-1) whose run holds its batch until `release`: the items submitted
    meanwhile queue up behind it and are run together next."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.go_on = threading.Event()

    def hold(self, item: int) -> bool:
        if item != -1:
            return False
        self.running.set()
        assert self.go_on.wait(5)
        return True

    def queue(
        self, commit: GroupCommit[int, int], pool: ThreadPoolExecutor, items: range
    ) -> list[Future[int]]:
        first = pool.submit(commit.submit, -1)
        assert self.running.wait(5)
        futures = [pool.submit(commit.submit, n) for n in items]
        while len(commit._queue) < len(items):
            threading.Event().wait(0.01)
        self.go_on.set()
        assert first.result(5) == -1
        return futures


def test_a_failing_batch_is_run_one_by_one_and_only_the_bad_item_fails() -> None:
    ran_one: list[int] = []
    leader = HeldLeader()

    def run_batch(items: Sequence[int]) -> list[int]:
        if 3 in items:
            raise ValueError("item 3 is poison")
        return list(items)

    def run_one(item: int) -> int:
        if leader.hold(item):
            return item
        ran_one.append(item)
        if item == 3:
            raise ValueError("item 3 is poison")
        return item

    commit: GroupCommit[int, int] = GroupCommit(run_batch=run_batch, run_one=run_one)
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = leader.queue(commit, pool, range(5))  # one batch of five, then
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(5))
            except ValueError as exc:
                outcomes.append(str(exc))
    assert outcomes == [0, 1, 2, "item 3 is poison", 4]
    assert sorted(ran_one) == [0, 1, 2, 3, 4]


def test_more_waiting_than_one_batch_holds_all_get_done() -> None:
    sizes: list[int] = []
    leader = HeldLeader()

    def run_batch(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=run_batch, run_one=lambda item: -1 if leader.hold(item) else item, max_batch=4
    )
    with ThreadPoolExecutor(max_workers=11) as pool:
        futures = leader.queue(commit, pool, range(10))
        assert [f.result(5) for f in futures] == list(range(10))
    assert sizes == [4, 4, 2]


def test_many_callers_one_batch_at_a_time_each_its_own_result() -> None:
    """Callers arriving all the time: every one gets its own result, and batches never
    overlap (one leader at a time, handed on from batch to batch)."""
    running = 0
    overlapped = False
    guard = threading.Lock()

    def run(items: Sequence[int]) -> list[int]:
        nonlocal running, overlapped
        with guard:
            running += 1
            overlapped |= running > 1
        threading.Event().wait(0.001)
        with guard:
            running -= 1
        return [item * 2 for item in items]

    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=run, run_one=lambda item: run([item])[0], max_batch=8
    )

    def caller(base: int) -> list[int]:
        return [commit.submit(base + n) for n in range(30)]

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(caller, range(0, 40_000, 1000)))
    assert results == [[2 * (base + n) for n in range(30)] for base in range(0, 40_000, 1000)]
    assert not overlapped
    assert commit._queue == [] and not commit._leading


@pytest.mark.parametrize("n", [1])
def test_a_single_item_runs_alone(n: int) -> None:
    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=lambda items: pytest.fail("a batch of one goes to run_one"),
        run_one=lambda item: item + 1,
    )
    assert commit.submit(n) == n + 1


def _gathering(more_coming: bool) -> tuple[GroupCommit[int, int], list[list[int]]]:
    batches: list[list[int]] = []

    def run_batch(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return list(items)

    def run_one(item: int) -> int:
        batches.append([item])
        return item

    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=run_batch,
        run_one=run_one,
        gather=10.0,  # far longer than the test takes: only arrivals may end the wait
        min_batch=3,
        more_coming=lambda: more_coming,
    )
    return commit, batches


def test_a_lone_item_waits_for_more_while_more_are_coming() -> None:
    """A backlog's outcomes arrive a few milliseconds apart: the first one's leader waits
    for `min_batch` of them, so they share one transaction instead of one each."""
    commit, batches = _gathering(more_coming=True)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(commit.submit, 1)
        deadline = time.monotonic() + 5
        while not commit._gathering:  # the leader is waiting for more
            assert time.monotonic() < deadline, "the leader never waited for more"
            threading.Event().wait(0.001)
        second = pool.submit(commit.submit, 2)
        threading.Event().wait(0.05)
        assert not first.done() and not second.done()  # still gathering: 2 of 3
        third = pool.submit(commit.submit, 3)
        assert [f.result(5) for f in (first, second, third)] == [1, 2, 3]
    assert batches == [[1, 2, 3]]


def test_a_lone_item_waits_no_longer_than_gather() -> None:
    commit, batches = _gathering(more_coming=True)
    commit.gather = 0.05
    started = time.monotonic()
    assert commit.submit(7) == 7
    waited = time.monotonic() - started
    assert 0.04 <= waited < 1.0
    assert batches == [[7]]


def test_nothing_more_coming_runs_at_once() -> None:
    """With no calls in progress (one grant's outcome, an idle bot) nobody waits."""
    commit, batches = _gathering(more_coming=False)
    started = time.monotonic()
    assert commit.submit(5) == 5
    assert time.monotonic() - started < 5.0  # the gather is 10 s
    assert batches == [[5]]


def test_the_wait_ends_when_the_last_item_on_its_way_has_come() -> None:
    """Fewer calls in progress than `min_batch` (a small pool, a target that takes one call at
    a time): the leader stops waiting once the last of them has reported, not at `gather`."""
    coming = threading.Event()
    coming.set()
    commit, batches = _gathering(more_coming=True)
    commit._more_coming = coming.is_set
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(commit.submit, 1)
        deadline = time.monotonic() + 5
        while not commit._gathering:
            assert time.monotonic() < deadline, "the leader never waited for more"
            threading.Event().wait(0.001)
        started = time.monotonic()
        coming.clear()  # the last call in progress ends and hands in its outcome
        second = pool.submit(commit.submit, 2)
        assert first.result(5) == 1 and second.result(5) == 2
    assert time.monotonic() - started < 5.0  # the gather is 10 s
    assert batches == [[1, 2]]


def test_a_failing_more_coming_does_not_stop_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bool:
        raise RuntimeError("no idea")

    commit, batches = _gathering(more_coming=True)
    commit._more_coming = broken
    assert commit.submit(4) == 4
    assert batches == [[4]]
    assert "more items are coming failed" in caplog.text


class Interrupt(BaseException):
    """Not an Exception: what a batch is not run again item by item for (as KeyboardInterrupt)."""


def test_a_batch_cut_short_by_an_interrupt_leaves_no_waiter_hanging() -> None:
    leader = HeldLeader()

    def run_batch(items: Sequence[int]) -> list[int]:
        raise Interrupt

    def run_one(item: int) -> int:
        leader.hold(item)
        return item

    commit: GroupCommit[int, int] = GroupCommit(run_batch=run_batch, run_one=run_one)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = leader.queue(commit, pool, range(4))
        outcomes = [f.exception(5) for f in futures]
        assert commit.submit(7) == 7  # the next item is run: no lead is left taken
    # One submitter's own batch raised the interrupt; the others hear their batch was cut short.
    assert sum(isinstance(e, Interrupt) for e in outcomes) == 1
    assert sum(isinstance(e, RuntimeError) for e in outcomes) == 3


def test_a_waiter_interrupted_while_it_waits_leaves_no_lead_behind() -> None:
    """A submitter interrupted while waiting (a signal in the main thread) is taken out of the
    queue: the lead goes on to the next waiter, which gets its result, and so do later ones."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    leader = HeldLeader()
    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=lambda items: list(items),
        run_one=lambda item: item if not leader.hold(item) else -1,
        max_batch=1,
    )

    def interrupt(*_: object) -> None:
        raise Interrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            first = pool.submit(commit.submit, -1)
            assert leader.running.wait(5)

            def queue_then_signal() -> int:
                while len(commit._queue) < 1:  # the main thread is waiting
                    time.sleep(0.005)
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
                while commit._queue:  # it left the queue
                    time.sleep(0.005)
                later = pool.submit(commit.submit, 2)
                while len(commit._queue) < 1:
                    time.sleep(0.005)
                leader.go_on.set()
                return later.result(5)

            helper = pool.submit(queue_then_signal)
            with pytest.raises(Interrupt):
                commit.submit(1)
            assert helper.result(10) == 2
            assert first.result(5) == -1
        assert commit.submit(3) == 3
        assert commit._queue == [] and not commit._leading
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("sizes", [{"max_batch": 0}, {"min_batch": 0}])
def test_batch_sizes_below_one_are_refused(sizes: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(run_batch=list, run_one=lambda item: item, **sizes)
