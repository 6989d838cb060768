"""Group commit: outcomes that arrive together share one batch; one bad item harms no other."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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


def test_a_failing_batch_is_run_one_by_one_and_only_the_bad_item_fails() -> None:
    ran_one: list[int] = []

    def run_batch(items: Sequence[int]) -> list[int]:
        if 3 in items:
            raise ValueError("item 3 is poison")
        return list(items)

    def run_one(item: int) -> int:
        ran_one.append(item)
        if item == 3:
            raise ValueError("item 3 is poison")
        return item

    commit: GroupCommit[int, int] = GroupCommit(run_batch=run_batch, run_one=run_one)
    commit._leading = True  # queue all five, then let one caller lead them as a single batch
    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(commit.submit, n) for n in range(5)]
        while len(commit._queue) < 5:
            threading.Event().wait(0.01)
        with commit._changed:
            commit._leading = False
            commit._changed.notify_all()
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

    def run_batch(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=run_batch, run_one=lambda item: item, max_batch=4
    )
    commit._leading = True
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(commit.submit, n) for n in range(10)]
        while len(commit._queue) < 10:
            threading.Event().wait(0.01)
        with commit._changed:
            commit._leading = False
            commit._changed.notify_all()
        assert [f.result(5) for f in futures] == list(range(10))
    assert max(sizes) <= 4


@pytest.mark.parametrize("n", [1])
def test_a_single_item_runs_alone(n: int) -> None:
    commit: GroupCommit[int, int] = GroupCommit(
        run_batch=lambda items: pytest.fail("a batch of one goes to run_one"),
        run_one=lambda item: item + 1,
    )
    assert commit.submit(n) == n + 1
