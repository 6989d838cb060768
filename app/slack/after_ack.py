"""The work a Slack listener does after its ack, on threads of its own.

Listeners run in the thread that answers Slack's HTTP request (Bolt's `process_before_response`),
and the answer goes out when they return. A listener that went on to slow work (the database,
Slack, PagerDuty) would hold the answer. So listeners validate, ack, hand the rest to
`AfterAck`, and return.

Threads alone do not make acks fast: after-ack jobs are partly CPU work (the ORM, rendering), and
every thread shares one interpreter lock. So acks come first (`AckTraffic`, counted by the HTTP
layer). An after-ack job or a Slack delivery starts once no request has been answered for
`QUIET` seconds; while requests keep coming it starts after `DEFER_LIMIT`, one of its kind at a
time. And every thread that is not answering a request (after-ack jobs, the Slack sender, grant
workers, the scheduler) pauses before each database transaction it starts while requests are
being answered, for at most `YIELD_LIMIT`: work is held between steps, never inside one, and it
never starves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from app.core.jobs import JobHandlers, JobQueue

log = logging.getLogger(__name__)

# Seconds background work waits at one step (a transaction) for a pause in requests. With QUIET
# as long, a step that starts during a burst waits this long: a job of N transactions takes up
# to N times this longer while Slack keeps sending requests (a revoke: two, 0.1 s).
YIELD_LIMIT = 0.05
# Requests come in runs (one after another on a connection, a burst of people): background work
# goes on once none has been answered for this long, not in the gap between two of a run. On a
# busy machine two requests of a run can be several milliseconds apart (the client, or the
# server's loop, waiting for a core): at 5 ms, such a gap let every waiting job start in the
# middle of a burst.
QUIET = 0.05
DEFER_LIMIT = 1.0  # seconds a background job waits for a pause in requests before it starts
RECHECK = 0.25  # seconds a thread waiting for a pause sleeps at most before it looks again
# While other work comes first (`behind`), a lane starts one job at a time, this many seconds
# apart: a trickle that keeps it moving without taking the CPU the other work needs.
BEHIND_SPACING = 0.25


class AckTraffic:
    """How many Slack requests are being answered right now, and when the last one was. Jobs
    (after-ack work, Slack deliveries) start through `background(lane)`; background threads call
    `yield_to_answers` before each step (the engine does, at each transaction it begins)."""

    def __init__(
        self,
        *,
        yield_limit: float = YIELD_LIMIT,
        quiet: float = QUIET,
        defer_limit: float = DEFER_LIMIT,
        behind_spacing: float = BEHIND_SPACING,
    ) -> None:
        self.yield_limit = yield_limit
        self.quiet = quiet
        self.defer_limit = defer_limit
        self.behind_spacing = behind_spacing
        self._answering = 0
        self._last_answered = float("-inf")  # time.monotonic() when the last one was answered
        self._waiting = 0  # threads waiting on `_pause`
        self._watching = 0  # of them, those timing the quiet after the last answer
        self._running: Counter[str] = Counter()
        self._last_started: dict[str, float] = {}  # lane -> when its last job started
        self._lock = threading.RLock()  # over the state above
        self._changed = threading.Condition(self._lock)  # lanes' waits (`behind`, a busy lane)
        # Threads waiting for a pause in requests wait on a condition of their own, so that the
        # one wake-up an answer gives goes to a thread that will watch for the pause.
        self._pause = threading.Condition(self._lock)
        self._local = threading.local()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one Slack request, up to its response."""
        with self._changed:
            self._answering += 1
        try:
            with self.foreground():
                yield
        finally:
            with self._changed:
                self._answering -= 1
                self._last_answered = time.monotonic()
                if not self._answering and self._waiting and not self._watching:
                    # One waiter wakes, to see the quiet time out and then wake the rest. (All
                    # of them waking at every answer took the interpreter lock from the acks
                    # dozens of times a request.)
                    self._pause.notify()

    def answered_elsewhere(self) -> None:
        """Another process answered a Slack request (its after-ack job's NOTIFY says so): a
        worker process's background work waits for the pause in requests as if it had
        answered it, since it shares the machine, or the database, with the one that did."""
        with self._changed:
            self._last_answered = time.monotonic()
            if not self._answering and self._waiting and not self._watching:
                self._pause.notify()

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark this thread as answering requests (never held by `yield_to_answers`)."""
        before = getattr(self._local, "foreground", False)
        self._local.foreground = True
        try:
            yield
        finally:
            self._local.foreground = before

    def mark_foreground(self) -> None:
        """For a pool whose threads only ever answer requests (Bolt's listener executor)."""
        self._local.foreground = True

    def yield_to_answers(self) -> None:
        """A step of background work is about to start (a database transaction): while Slack
        requests are being answered, or were a moment ago (`quiet`), wait until they are not,
        for at most `yield_limit` seconds."""
        if getattr(self._local, "foreground", False) or self._is_quiet(time.monotonic()):
            return
        deadline = time.monotonic() + self.yield_limit
        with self._changed:
            while True:
                now = time.monotonic()
                if self._is_quiet(now) or now >= deadline:
                    self._pass_the_watch(now)
                    return
                self._wait_for_pause(now, deadline)

    def _is_quiet(self, now: float) -> bool:
        return not self._answering and now - self._last_answered >= self.quiet

    def _wait_for_pause(self, now: float, until: float) -> None:
        """With the lock held: wait for the next pause in requests, or `until`. While requests
        are being answered, waiters sleep until the last one is answered, when one of them is
        woken (`answering`); it waits out the quiet time and, if no request came meanwhile,
        wakes the others. While it waits, answers wake nobody (it looks again when its time is
        up). So answers cost a wake-up each at most, not one per waiter; a waiter also looks
        again every `RECHECK` seconds, in case a wake-up went astray."""
        self._waiting += 1
        try:
            if self._answering:
                self._pause.wait(min(until - now, RECHECK))
                return
            self._watching += 1
            try:
                self._pause.wait(min(self._last_answered + self.quiet, until) - now)
            finally:
                self._watching -= 1
            if self._is_quiet(time.monotonic()):
                self._pause.notify_all()
        finally:
            self._waiting -= 1

    def _pass_the_watch(self, now: float) -> None:
        """A waiter that leaves for another reason than the pause (its own time ran out) may be
        the one woken to watch for it: wake another in its place, unless one watches."""
        answered_lately = not self._answering and now - self._last_answered < self.quiet
        if answered_lately and self._waiting and not self._watching:
            self._pause.notify()

    @contextmanager
    def background(
        self, lane: str, *, behind: Callable[[], bool] = lambda: False
    ) -> Iterator[None]:
        """Around one background job. It starts once no Slack request has been answered for
        `quiet` seconds; while requests keep coming, after waiting `defer_limit` seconds, one
        job of the lane at a time. (And while `behind()`, other work that comes first, one job
        of the lane at a time, `behind_spacing` seconds apart.)"""
        with self._changed:
            deadline = time.monotonic() + self.defer_limit
            while True:
                now = time.monotonic()
                lane_busy = self._running[lane] > 0
                if behind():
                    self._pass_the_watch(now)  # it may have been woken to watch for a pause
                    next_start = self._last_started.get(lane, -math.inf) + self.behind_spacing
                    if lane_busy:  # told when its job ends
                        self._changed.wait(0.05)
                        continue
                    if now < next_start:
                        self._changed.wait(min(0.05, next_start - now))
                        continue
                if self._is_quiet(now) or (not lane_busy and now >= deadline):
                    self._pass_the_watch(now)
                    break
                # Until a pause, or its deadline; past that with its lane busy, until the
                # lane's job ends (which wakes every waiter).
                until = deadline if not lane_busy else now + self.defer_limit
                self._wait_for_pause(now, max(until, now + 0.001))
            self._running[lane] += 1
            self._last_started[lane] = time.monotonic()
        try:
            yield
        finally:
            with self._changed:
                self._running[lane] -= 1
                self._changed.notify_all()
                self._pause.notify_all()


class AfterAck:
    """What listeners leave for after the ack.

    Work that changes something (store a request, record a decision) is a durable job: `later`
    writes it to the database before the ack goes out, and a job loop runs it, in this process
    or in a worker process of its own (`app/core/jobs.py`); `define` says what each kind does.

    Work that is only worth doing at once runs on threads of this process (`submit`): refreshing
    App Home, and jobs Slack gives a deadline to (opening a modal: its trigger is good for 3
    seconds), which are `urgent`: they run at once, on threads of their own, so that jobs
    waiting for a pause in requests (`AckTraffic.background`) never hold them up."""

    def __init__(
        self, threads: int, traffic: AckTraffic | None = None, jobs: JobQueue | None = None
    ) -> None:
        self.traffic = traffic or AckTraffic()
        self.jobs = jobs
        self.handlers = JobHandlers()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")
        self._urgent = ThreadPoolExecutor(
            max_workers=max(2, threads // 2), thread_name_prefix="after-ack-urgent"
        )

    def define(self, kind: str, handler: Callable[..., object]) -> None:
        """What a job of `kind` does: `handler(*args)` with the arguments given to `later`."""
        self.handlers.define(kind, handler)

    def later(self, kind: str, *args: Any) -> None:
        """Store a job (its arguments JSON) for a job loop to run: call it before `ack()`, so
        that Slack is acknowledged only for work that is stored. Raises if it cannot be."""
        if self.jobs is None:
            raise RuntimeError("no job queue: after-ack jobs cannot be stored")
        if not self.handlers.known(kind):
            raise LookupError(f"no handler for after-ack job kind {kind!r}")
        self.jobs.add(kind, list(args))

    def submit(self, fn: Callable[..., object], *args: Any, urgent: bool = False) -> Future[None]:
        """Run `fn(*args)` on an after-ack thread. A failure is logged, never raised, so one bad
        job cannot harm the others. Raises RuntimeError once shut down."""
        if urgent:
            return self._urgent.submit(_run, fn, args)
        return self._executor.submit(self._run, fn, args)

    def _run(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        with self.traffic.background("after-ack"):
            _run(fn, args)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Take no more work; jobs already submitted still run. With `wait`, wait for them for at
        most `timeout` seconds (None: as long as they take)."""
        if wait:
            started = time.monotonic()
            shutdown_within(self._urgent, timeout, what="urgent after-ack jobs")
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            shutdown_within(self._executor, left, what="after-ack jobs")
        else:
            self._urgent.shutdown(wait=False)
            self._executor.shutdown(wait=False)


def _run(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    try:
        fn(*args)
    except Exception:
        # The job's name and the traceback, never its arguments: they hold Slack payloads
        # (with the legacy verification token) and what people typed.
        log.exception("after-ack job %s failed", _name(fn))


def _name(fn: Callable[..., object]) -> str:
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{getattr(fn, '__module__', None) or '?'}.{qualname.replace('<locals>.', '')}"


def shutdown_within(executor: ThreadPoolExecutor, timeout: float | None, *, what: str) -> bool:
    """Shut `executor` down, waiting at most `timeout` seconds (None: unbounded) for the work it
    holds. True when it all finished; otherwise the rest goes on in the background."""
    if timeout is None:
        executor.shutdown(wait=True)
        return True
    executor.shutdown(wait=False)  # from now on, submit() raises RuntimeError
    waiter = threading.Thread(target=executor.shutdown, name="executor-drain", daemon=True)
    waiter.start()
    waiter.join(max(timeout, 0))
    if waiter.is_alive():
        log.warning("%s still running after %.1fs of shutdown; not waiting for them", what, timeout)
        return False
    return True
