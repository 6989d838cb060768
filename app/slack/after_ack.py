"""The work a Slack listener does after its ack, on threads of its own.

Bolt runs each listener on its listener executor and holds Slack's HTTP response until the
listener calls ack(). A listener that went on to slow work (the database, Slack, PagerDuty) would
keep its thread, and other requests' acks would queue behind it. So listeners validate, ack, hand
the rest to `AfterAck`, and return: their threads are free for the next ack at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class AfterAck:
    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")

    def submit(self, fn: Callable[..., object], *args: Any) -> Future[None]:
        """Run `fn(*args)` on an after-ack thread. A failure is logged, never raised, so one bad
        job cannot harm the others. Raises RuntimeError once shut down."""
        return self._executor.submit(_run, fn, args)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Take no more work; jobs already submitted still run. With `wait`, wait for them for at
        most `timeout` seconds (None: as long as they take)."""
        if wait:
            shutdown_within(self._executor, timeout, what="after-ack jobs")
        else:
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
