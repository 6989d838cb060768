"""Run someone else's code (a grant strategy, a policy hook) with a hard wall-clock deadline.

Python cannot kill a thread, so the call runs on a thread of its own and the caller stops
waiting when the deadline passes. The call may go on in the background until it returns; the
`done` callback (which always runs, when it finally does) lets the caller keep counting it, so
a target that hangs is not sent more work than its in-flight limit.

The threads are reused: a call goes to an idle one, and a thread is started only when none is
idle (a call that hangs keeps its thread until it returns). Starting a thread per call cost a
mass revocation about a tenth of its CPU. A thread idle for `idle_seconds` ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

IDLE_SECONDS = 60.0


class DeadlineExceeded(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g}s")
        self.seconds = seconds


class CallThreads:
    """Daemon threads that run calls, started only when none is idle: a call never waits for
    a thread (its deadline starts when it is handed over), and a hung call never holds up the
    next. Daemon threads, so a call that never returns does not keep the process alive."""

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no job has been promised to yet
        self._threads = 0

    @property
    def threads(self) -> int:
        with self._lock:
            return self._threads

    def run(self, job: Callable[[], None]) -> None:
        """Start `job` at once on an idle thread, or on a new one."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that thread is promised this job
                start = False
            else:
                self._threads += 1
                start = True
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, name="deadline-call", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no job was promised to this thread: it may end
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a job was promised to an idle thread: it is on its way
            try:
                job()
            finally:
                with self._lock:
                    self._idle += 1


_THREADS = CallThreads()


def call_with_deadline(
    fn: Callable[[], T],
    seconds: float,
    *,
    name: str = "deadline-call",
    done: Callable[[], None] | None = None,
    threads: CallThreads | None = None,
) -> T:
    """`fn()`'s result, or what it raised; DeadlineExceeded if it takes more than `seconds`."""
    outcome: list[object] = []
    failure: list[BaseException] = []
    # Held until the call has ended: a lock the caller waits to acquire is the cheapest
    # one-shot signal (an Event's wait builds a Condition and a lock of its own each time;
    # under a backlog that was a tenth of the interpreter time spent on revocations).
    finished = threading.Lock()
    finished.acquire()

    def run() -> None:
        thread = threading.current_thread()
        thread.name = name  # what a stack dump of a hung call shows
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller, whatever it is
            failure.append(exc)
        finally:
            thread.name = "deadline-call"
            try:
                if done is not None:
                    done()
            finally:
                finished.release()

    (threads or _THREADS).run(run)
    if not finished.acquire(timeout=min(max(seconds, 0.0), threading.TIMEOUT_MAX)):
        raise DeadlineExceeded(seconds)
    if failure:
        raise failure[0]
    return outcome[0]  # type: ignore[return-value]
