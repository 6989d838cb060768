"""A loop that claims due work from the database and runs it on a bounded pool of threads.

The database decides what is due; the loop only decides when to look: at once when kicked
(something new was committed), when the next known due time arrives, and at least every
`idle_wait` seconds (work another process left behind). It claims no more than it has room
for (free threads, and what `room` allows: free slots at the targets), so claimed work never
waits in memory while its lease runs out. With no room it does not even look: finished work
kicks it. While room is scarce it waits a few milliseconds for more, so that it claims in
batches (one transaction for several) rather than one by one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_WAIT = 0.05
GATHER = 0.01  # with most threads busy, wait this long for more to free before claiming


class WorkLoop(Generic[T]):
    def __init__(
        self,
        *,
        name: str,
        threads: int,
        claim: Callable[[int], Sequence[T]],
        handle: Callable[[T], None],
        next_due: Callable[[], datetime | None],
        idle_wait: float,
        clock: Callable[[], datetime],
        room: Callable[[], int] | None = None,
        capacity: int | None = None,
    ) -> None:
        """`room`: how many more items may run now, besides free threads (None: no limit);
        `capacity`: the most `room` can be (a batch is a quarter of the lesser of it and
        `threads`)."""
        self.name = name
        self.threads = threads
        self._room = room
        self._batch = max(1, min(threads, capacity or threads) // 4)
        self._claim = claim
        self._handle = handle
        self._next_due = next_due
        self.idle_wait = idle_wait
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._busy = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-loop", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Look for due work now (something was committed that may be due)."""
        self._wake.set()

    def stop(self, grace: float = 10.0) -> None:
        """Claim nothing more; let work in progress finish for up to `grace` seconds.

        Work still running after that keeps its lease until the lease runs out; then another
        instance (or the next start) takes it over."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        deadline = time.monotonic() + grace
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._free()
            if 0 < free < self._batch:
                # Busy: claim in batches (one transaction for several) rather than one by one.
                self._stopping.wait(GATHER)
                free = self._free()
            claimed: Sequence[T] = ()
            if free > 0:
                try:
                    claimed = self._claim(free)
                except Exception:  # the database is down: wait, then look again
                    log.exception("%s: claiming work failed", self.name)
                    self._stopping.wait(min(self.idle_wait, 5.0))
                    continue
                for item in claimed:
                    self._submit(item)
            if free > 0 and len(claimed) == free:
                continue  # there may be more due right now
            self._wake.wait(self._wait_seconds() if free > 0 else self.idle_wait)

    def _free(self) -> int:
        free = self.threads - self.busy
        if self._room is not None and free > 0:
            free = min(free, self._room())
        return free

    def _wait_seconds(self) -> float:
        try:
            due = self._next_due()
        except Exception:
            log.exception("%s: reading the next due time failed", self.name)
            return min(self.idle_wait, 5.0)
        if due is None:
            return self.idle_wait
        # Never less than MIN_WAIT: what is due but was not claimed is someone else's for now.
        return min(max((due - self.clock()).total_seconds(), MIN_WAIT), self.idle_wait)

    def _submit(self, item: T) -> None:
        with self._lock:
            self._busy += 1
        try:
            self._pool.submit(self._run_one, item)
        except RuntimeError:  # shutting down: the lease runs out and someone else takes it
            self._done()

    def _run_one(self, item: T) -> None:
        try:
            self._handle(item)
        except Exception:  # one item's failure is that item's alone
            log.exception("%s: handling an item failed", self.name)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
        self._wake.set()
