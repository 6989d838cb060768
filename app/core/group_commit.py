"""Group commit: many threads each hand over one item; one of them commits them all together.

A worker that has finished its call needs one short transaction to record the outcome. When
many finish at about the same time (a burst of expiries), one transaction each would cost a
round trip and a commit apiece. Here the first caller to find no batch in progress leads: it
takes the waiting items (its own among them, up to `max_batch`) and runs them in one batch;
the others wait for their result. A batch that fails is run again item by item, so one bad
item never costs the others their outcome.

Each waiter sleeps on a lock of its own, released once: when its item is done, or when it is
handed the lead (the leader's own item is done and items are still waiting). No waiter wakes
for a batch that did not hold its item; found on the ack path (20 requests at once), where
a shared `Condition` woke every waiter after every batch, each to take the lock in turn: a
fifth of the ack's interpreter time went to adding its job.

A leader that would commit fewer than `min_batch` items while `more_coming()` says others are
on their way (calls still in progress) waits up to `gather` seconds for them: a transaction's
fixed cost (its round trips, the commit) is then shared by a few more items. Found in a backlog
of 10,000 revocations: a third of the outcomes' transactions held one outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)  # an entry is itself: found in the queue by identity, not by its item
class _Entry(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = field(default=None, repr=False)
    handed: bool = False  # its submitter is to lead next (set with the GroupCommit's lock)
    # Held from the start; released once, by another thread: the item is done, or its
    # submitter is to lead.
    wake: threading.Lock = field(default_factory=threading.Lock, repr=False)


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        *,
        run_batch: Callable[[Sequence[T]], Sequence[R]],
        run_one: Callable[[T], R],
        max_batch: int = 64,
        gather: float = 0.0,
        min_batch: int = 1,
        more_coming: Callable[[], bool] = lambda: False,
    ) -> None:
        if max_batch < 1 or min_batch < 1:
            raise ValueError("max_batch and min_batch must be at least 1")
        self._run_batch = run_batch
        self._run_one = run_one
        self.max_batch = max_batch
        self.gather = gather
        self.min_batch = min_batch
        self._more_coming = more_coming
        self._queue: list[_Entry[T, R]] = []  # submitted, not yet taken into a batch
        self._leading = False  # a leader exists (running a batch, or about to)
        self._gathering = False
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # an item came: wakes a gathering leader

    def submit(self, item: T) -> R:
        """Run `item` in the next batch and return its result (or raise its error)."""
        entry: _Entry[T, R] = _Entry(item)
        entry.wake.acquire()
        with self._lock:
            self._queue.append(entry)
            if self._gathering:
                self._arrived.notify()
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                entry.wake.acquire()  # until done, or handed the lead
            except BaseException:  # interrupted while waiting: leave no lead behind
                with self._lock:
                    successor = self._leave(entry) if entry.handed else None
                    if entry in self._queue:
                        self._queue.remove(entry)
                if successor is not None:
                    successor.wake.release()
                raise
        while not entry.done:  # leading: until a batch has held our own item
            batch: list[_Entry[T, R]] = []
            try:
                with self._lock:
                    self._gather()
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                self._run(batch)
            except BaseException:  # interrupted: fail the batch, hand the lead on, go
                for other in batch:
                    if not other.done:
                        other.error, other.done = RuntimeError("the batch was interrupted"), True
                with self._lock:
                    successor = self._leave(entry)
                self._wake_all(batch, entry, successor)
                raise
            successor = None
            if entry.done:
                with self._lock:
                    successor = self._leave(entry)
            self._wake_all(batch, entry, successor)
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _leave(self, leader: _Entry[T, R]) -> _Entry[T, R] | None:
        """With the lock held, as the leader stepping down: the waiter to lead next (the
        first still waiting), or None, and then no one leads."""
        if leader in self._queue:  # leaving before its own item was run (interrupted)
            self._queue.remove(leader)
        if self._queue:
            successor = self._queue[0]
            successor.handed = True
            return successor
        self._leading = False
        return None

    @staticmethod
    def _wake_all(
        batch: list[_Entry[T, R]], leader: _Entry[T, R], successor: _Entry[T, R] | None
    ) -> None:
        for other in batch:
            if other is not leader:
                other.wake.release()
        if successor is not None:
            successor.wake.release()

    def _gather(self) -> None:
        """As leader, with the lock held: wait a little for more items, while few are waiting
        and more are on their way."""
        if self.gather <= 0:
            return
        end = time.monotonic() + self.gather
        self._gathering = True
        try:
            # Until enough are waiting, or nothing more is on its way (the last call's outcome
            # came: fewer than `min_batch` calls can be in progress at once), or time is up.
            while len(self._queue) < self.min_batch and self._more():
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._arrived.wait(left)
        finally:
            self._gathering = False

    def _more(self) -> bool:
        try:
            return self._more_coming()
        except Exception:  # waiting is only an optimisation: never let it stop a batch
            log.exception("asking whether more items are coming failed")
            return False

    def _run(self, batch: list[_Entry[T, R]]) -> None:
        try:
            results = self._run_batch([entry.item for entry in batch]) if len(batch) > 1 else None
        except Exception:
            log.warning("a batch of %d failed; running them one by one", len(batch), exc_info=True)
            results = None
        if results is not None and len(results) == len(batch):
            for entry, result in zip(batch, results, strict=True):
                entry.result, entry.done = result, True
            return
        for entry in batch:
            try:
                entry.result = self._run_one(entry.item)
            except BaseException as exc:  # handed to the caller that submitted it
                entry.error = exc
            entry.done = True
